//! Computed values (`set contact.FIELD = EXPR`): lowering to `ExprIr`, with the type check
//! of every operation whose operands' types are known here (literals, `now`, durations);
//! `contact.…` and `entry.…` are known only at run time, where a mismatch is `set.failed`.

use super::*;

/// What the compiler knows of a value's type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Ty {
    Number,
    Text,
    Bool,
    Time,
    Duration,
    List,
    /// `contact.…`, `entry.…`: whatever the profile or the event holds.
    Unknown,
}

impl Ty {
    fn name(self) -> &'static str {
        match self {
            Ty::Number => "a number",
            Ty::Text => "a string",
            Ty::Bool => "a boolean",
            Ty::Time => "a time",
            Ty::Duration => "a duration",
            Ty::List => "a list",
            Ty::Unknown => "a value",
        }
    }
}

/// The type of `a op b`, or why there is none. Unknown operands give an unknown result,
/// except where the other side settles it (`now - contact.x` is a time or a number).
pub(super) fn result_type(op: BinOp, a: Ty, b: Ty) -> Result<Ty, String> {
    use Ty::*;
    let verb = match op {
        BinOp::Add => "add",
        BinOp::Sub => "subtract",
        BinOp::Mul => "multiply",
        BinOp::Div => "divide",
    };
    match (op, a, b) {
        (_, Unknown, _) | (_, _, Unknown) => Ok(Unknown),
        (_, Number, Number) => Ok(Number),
        (BinOp::Add | BinOp::Sub, Time, Duration) => Ok(Time),
        (BinOp::Add, Duration, Time) => Ok(Time),
        (BinOp::Add | BinOp::Sub, Duration, Duration) => Ok(Duration),
        (BinOp::Sub, Time, Time) => Ok(Number),
        _ => Err(format!("cannot {verb} {} and {}", a.name(), b.name())),
    }
}

impl<'a> Compiler<'a> {
    /// Lowers a computed value; a literal alone is the plain `Set` (same IR as before).
    pub(super) fn computed(
        &mut self,
        file: usize,
        field: &Ident,
        e: &Expr,
        next: Next,
        scope: &CondScope,
    ) -> StepKindIr {
        if let ExprKind::Literal(l) = &e.kind {
            return StepKindIr::Set {
                field: field.name.clone(),
                value: literal_value(l),
                next,
            };
        }
        let (expr, ty) = self.expr(file, e, scope);
        if ty == Ty::Duration {
            self.err(
                Diagnostic::error(file, e.span, "a duration alone is not a value to keep")
                    .with_label("this is a duration")
                    .with_help("add it to a time: `now + 3d`, `contact.trial_started_at + 14d`"),
            );
        }
        StepKindIr::Compute {
            field: field.name.clone(),
            expr,
            next,
        }
    }

    fn expr(&mut self, file: usize, e: &Expr, scope: &CondScope) -> (ExprIr, Ty) {
        match &e.kind {
            ExprKind::Literal(l) => {
                let ty = match l {
                    Literal::Number { .. } => Ty::Number,
                    Literal::Str(_) => Ty::Text,
                    Literal::Bool(_) => Ty::Bool,
                    Literal::Date(_) => Ty::Time,
                    Literal::List(_) => Ty::List,
                };
                (ExprIr::Lit(literal_value(l)), ty)
            }
            ExprKind::Now => (ExprIr::Now, Ty::Time),
            ExprKind::Dur(d) => (
                ExprIr::Dur {
                    seconds: d.seconds,
                    months: u32::try_from(d.months).unwrap_or(0),
                },
                Ty::Duration,
            ),
            ExprKind::Ref(path) => {
                self.value_ref(file, path, e.span, scope);
                let mut path = path.clone();
                // `event.x` in a step is the entry event, as in templates.
                if path[0] == "event" {
                    path[0] = "entry".into();
                }
                (ExprIr::Ref(path), Ty::Unknown)
            }
            ExprKind::Group(inner) => self.expr(file, inner, scope),
            ExprKind::Binary(op, a, b) => {
                let (ea, ta) = self.expr(file, a, scope);
                let (eb, tb) = self.expr(file, b, scope);
                let ty = match result_type(*op, ta, tb) {
                    Ok(t) => t,
                    Err(why) => {
                        self.err(
                            Diagnostic::error(file, e.span, why)
                                .with_label(format!("{} {} {}", ta.name(), op.as_str(), tb.name()))
                                .with_help(
                                    "numbers take `+ - * /`; a time takes `+` or `-` a duration \
                                     (`now + 3d`), and two times subtract to seconds",
                                ),
                        );
                        Ty::Unknown
                    }
                };
                let op = match op {
                    BinOp::Add => BinOpIr::Add,
                    BinOp::Sub => BinOpIr::Sub,
                    BinOp::Mul => BinOpIr::Mul,
                    BinOp::Div => BinOpIr::Div,
                };
                (ExprIr::Bin(op, Box::new(ea), Box::new(eb)), ty)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_of_operations() {
        use Ty::*;
        assert_eq!(result_type(BinOp::Add, Number, Number), Ok(Number));
        assert_eq!(result_type(BinOp::Add, Time, Duration), Ok(Time));
        assert_eq!(result_type(BinOp::Sub, Time, Time), Ok(Number));
        assert_eq!(result_type(BinOp::Add, Unknown, Text), Ok(Unknown));
        assert_eq!(
            result_type(BinOp::Add, Text, Number),
            Err("cannot add a string and a number".into())
        );
        assert!(result_type(BinOp::Mul, Time, Number).is_err());
        assert!(result_type(BinOp::Add, Time, Time).is_err());
    }
}
