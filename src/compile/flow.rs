//! Compiling flow checks over the linked graph: reachability, loops without a wait.

use super::*;

impl<'a> Compiler<'a> {
    /// Reachability from the start, and loops that never wait.
    pub(super) fn check_graph(&mut self, cx: &JourneyCx, start: Next) {
        let n = cx.steps.len();
        let mut reached = vec![false; n];
        let mut stack: Vec<StepId> = start.into_iter().collect();
        while let Some(id) = stack.pop() {
            if std::mem::replace(&mut reached[id as usize], true) {
                continue;
            }
            for s in cx.steps[id as usize]
                .kind
                .successors()
                .into_iter()
                .flatten()
            {
                stack.push(s);
            }
        }
        let mut reported: Vec<Span> = Vec::new();
        for (i, &was_reached) in reached.iter().enumerate() {
            let sp = cx.spans[i];
            if !was_reached
                && !reported
                    .iter()
                    .any(|r| r.start <= sp.start && sp.end <= r.end)
            {
                // Steps after `end` were reported by `link_block` already.
                if !self
                    .diags
                    .iter()
                    .any(|d| d.file == Some(cx.file) && d.span == sp)
                {
                    self.err(
                        Diagnostic::error(cx.file, self.step_keyword(cx.file, sp, false), format!("step '{}' can never run", cx.steps[i].name))
                            .with_label("unreachable")
                            .with_help("no path from the start leads here: add a `goto` to its label, or remove it"),
                    );
                }
                reported.push(sp);
            }
        }
        // A cycle among steps that do not wait would spin forever at one instant.
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let mut mark = vec![Mark::New; n];
        for root in 0..n {
            if mark[root] != Mark::New || cx.steps[root].kind.is_waiting() {
                continue;
            }
            // Iterative DFS over non-waiting steps.
            let mut path: Vec<(usize, Vec<usize>)> = Vec::new();
            let succ = |i: usize| -> Vec<usize> {
                cx.steps[i]
                    .kind
                    .successors()
                    .into_iter()
                    .flatten()
                    .map(|s| s as usize)
                    .filter(|s| !cx.steps[*s].kind.is_waiting())
                    .collect()
            };
            mark[root] = Mark::Active;
            path.push((root, succ(root)));
            while let Some((node, rest)) = path.last_mut() {
                let node = *node;
                match rest.pop() {
                    Some(next) => match mark[next] {
                        Mark::New => {
                            mark[next] = Mark::Active;
                            let s = succ(next);
                            path.push((next, s));
                        }
                        Mark::Active => {
                            let goto = cx
                                .gotos
                                .iter()
                                .find(|(_, t)| *t == Some(next as StepId))
                                .map(|(sp, _)| *sp);
                            let at = goto.unwrap_or(cx.spans[node]);
                            self.err(
                                Diagnostic::error(cx.file, at, format!("this loop back to '{}' never waits", cx.steps[next].name))
                                    .with_label("loops without a wait or check")
                                    .with_help("a loop must pass a `wait` or a `check`, or a contact would spin forever"),
                            );
                            return;
                        }
                        Mark::Done => {}
                    },
                    None => {
                        mark[node] = Mark::Done;
                        path.pop();
                    }
                }
            }
        }
        let _ = &cx.name;
    }
}
