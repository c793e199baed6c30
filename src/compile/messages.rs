//! Compiling messages: fields, templates and the partials they use (templates come in with the
//! loaded sources; disk is a fallback).

use super::*;

impl<'a> Compiler<'a> {
    pub(super) fn message(&mut self, file: usize, m: &ast::Send, step: &str) -> MessageIr {
        let mut ir = MessageIr {
            name: m.name.name.clone(),
            channel: m.channel,
            step: step.to_string(),
            fields: BTreeMap::new(),
            links: BTreeMap::new(),
            headers: Vec::new(),
            data: BTreeMap::new(),
            timeout_seconds: None,
            template_source: None,
            partials: BTreeMap::new(),
        };
        let allowed = allowed_fields(m.channel);
        for f in &m.fields {
            let name = field_name(&f.kind);
            if !allowed.contains(&name) {
                let mut d = Diagnostic::error(
                    file,
                    f.span,
                    format!("`{name}` is not a field of {} messages", m.channel.as_str()),
                );
                d = d.with_help(format!(
                    "{} messages take: {}",
                    m.channel.as_str(),
                    allowed.join(", ")
                ));
                self.err(d);
                continue;
            }
            match &f.kind {
                FieldKind::Text { key, value } => {
                    if ir
                        .fields
                        .insert(key.name.clone(), value.value.clone())
                        .is_some()
                    {
                        self.err(Diagnostic::error(
                            file,
                            f.span,
                            format!("`{}` is given twice", key.name),
                        ));
                    }
                    if key.name == "template" {
                        ir.template_source = self.read_template(file, value);
                        if let Some(source) = &ir.template_source {
                            ir.partials = self.read_partials(file, value, source);
                        }
                    }
                }
                FieldKind::Link { name, url } => {
                    if ir
                        .links
                        .insert(name.name.clone(), url.value.clone())
                        .is_some()
                    {
                        self.err(Diagnostic::error(
                            file,
                            name.span,
                            format!("link '{}' is declared twice", name.name),
                        ));
                    }
                }
                FieldKind::Header { name, value } => {
                    ir.headers.push((name.value.clone(), value.value.clone()))
                }
                FieldKind::Data(entries) => {
                    for (k, v) in entries {
                        ir.data.insert(k.name.clone(), v.value.clone());
                    }
                }
                FieldKind::Method(mth) => {
                    ir.fields.insert("method".into(), mth.name.clone());
                }
                FieldKind::Timeout(d) => {
                    ir.timeout_seconds = Some(self.check_positive(file, d, "a timeout"))
                }
            }
        }
        let has = |k: &str| ir.fields.contains_key(k);
        let missing = match m.channel {
            Channel::Email if !has("subject") => Some("an email needs a `subject`"),
            Channel::Email if !(has("template") || has("html") || has("text")) => Some(
                "an email needs a body: `template \"file.html\"`, `html \"…\"` or `text \"…\"`",
            ),
            Channel::Email if has("template") && has("html") => {
                Some("an email takes `template` or `html`, not both")
            }
            Channel::Sms if !has("text") => Some("an SMS needs a `text`"),
            Channel::Push if !(has("title") || has("body")) => {
                Some("a push needs a `title` or a `body`")
            }
            Channel::Webhook if !has("url") => Some("a webhook needs a `url`"),
            _ => None,
        };
        if let Some(why) = missing {
            self.err(
                Diagnostic::error(
                    file,
                    m.name.span,
                    format!("message '{}' is incomplete", m.name.name),
                )
                .with_help(why),
            );
        }
        ir
    }

    pub(super) fn read_template(&mut self, file: usize, name: &Str) -> Option<String> {
        let dir = self.file_dir(file).join("templates");
        let path = dir.join(&name.value);
        if name.value.contains("..") || Path::new(&name.value).is_absolute() {
            self.err(
                Diagnostic::error(
                    file,
                    name.span,
                    "a template path must stay inside templates/",
                )
                .with_help(
                    "name the file relative to the templates/ folder beside this journey file",
                ),
            );
            return None;
        }
        match self.template_text(&path) {
            Ok((_, s)) => Some(s),
            Err(e) => {
                let mut d = Diagnostic::error(
                    file,
                    name.span,
                    format!("template '{}' cannot be read: {}", name.value, e),
                )
                .with_label(format!("looked for {}", path.display()));
                let existing = self.template_names(&dir);
                d = match did_you_mean(&name.value, existing.iter().map(String::as_str)) {
                    Some(h) => d.with_help(h),
                    None => d.with_help(
                        "templates live in the templates/ folder beside the journey file",
                    ),
                };
                self.err(d);
                None
            }
        }
    }

    /// A template file's source id and text, as `lang` loaded it with the journeys, or why
    /// there is none.
    pub(super) fn template_text(&self, path: &Path) -> Result<(Option<usize>, String), String> {
        if let Some(&id) = self.loaded.templates.get(path) {
            return Ok((Some(id), self.loaded.sources.get(id).text.clone()));
        }
        Err(self
            .loaded
            .unreadable_templates
            .get(path)
            .cloned()
            .unwrap_or_else(|| "no such file".to_string()))
    }

    /// The template files `lang` found below `dir`, by name relative to it.
    pub(super) fn template_names(&self, dir: &Path) -> Vec<String> {
        self.loaded
            .templates
            .keys()
            .chain(self.loaded.unreadable_templates.keys())
            .filter_map(|p| p.strip_prefix(dir).ok())
            .map(|p| p.to_string_lossy().replace('\\', "/"))
            .collect()
    }

    /// Every partial the template `field` names uses, directly or through other partials,
    /// by name. A missing or unsafe one, a name that is not text, and a block that the
    /// template it extends does not have are errors at the template's line (or at the
    /// `template` field when the template is not among the loaded sources).
    pub(super) fn read_partials(
        &mut self,
        file: usize,
        field: &Str,
        source: &str,
    ) -> BTreeMap<String, String> {
        use partials::RefKind;
        let dir = self.file_dir(file).join("templates");
        let main_id = self.loaded.templates.get(&dir.join(&field.value)).copied();
        // Every template seen: name → (source id, text).
        let mut seen: BTreeMap<String, (Option<usize>, String)> = BTreeMap::new();
        seen.insert(field.value.clone(), (main_id, source.to_string()));
        let mut queue = vec![field.value.clone()];
        let mut parents: Vec<(String, String, Option<usize>, Span)> = Vec::new();
        let mut out = BTreeMap::new();
        while let Some(name) = queue.pop() {
            let (id, text) = seen[&name].clone();
            let (refs, _) = partials::scan(&text);
            for r in refs {
                // Where to point: the reference in the template, or the `template` field.
                let place = |msg: String| match id {
                    Some(id) => Diagnostic::error(id, r.span, msg),
                    None => Diagnostic::error(file, field.span, msg),
                };
                let Some(target) = r.name.clone() else {
                    self.err(place(format!("the template name in '{name}' is not a text")).with_help(
                        "write the partial's name in quotes, such as `{% include \"partials/footer.html\" %}`, so `journey check` can read it with the journey",
                    ));
                    continue;
                };
                if !partials::is_safe_name(&target) {
                    self.err(place(format!("partial '{target}' is outside templates/")).with_help(
                        "name partials relative to the templates/ folder, without `..` or a leading `/`",
                    ));
                    continue;
                }
                if r.kind == RefKind::Extends {
                    parents.push((name.clone(), target.clone(), id, r.span));
                }
                if seen.contains_key(&target) {
                    if target != field.value {
                        continue;
                    }
                    // The template itself, used by one of its partials: served as one too.
                    out.insert(target.clone(), source.to_string());
                    continue;
                }
                let path = dir.join(&target);
                match self.template_text(&path) {
                    Ok((pid, t)) => {
                        out.insert(target.clone(), t.clone());
                        seen.insert(target.clone(), (pid, t));
                        queue.push(target);
                    }
                    Err(_) if r.ignore_missing => {}
                    Err(e) => {
                        let existing = self.template_names(&dir);
                        let at = if id.is_some() {
                            String::new()
                        } else {
                            format!(" (in '{name}')")
                        };
                        let mut d = place(format!("partial '{target}' cannot be read{at}: {e}"))
                            .with_label(format!("looked for {}", path.display()));
                        d = match did_you_mean(&target, existing.iter().map(String::as_str)) {
                            Some(h) => d.with_help(h),
                            None => d.with_help(
                                "partials live in the templates/ folder beside the journey file",
                            ),
                        };
                        self.err(d);
                    }
                }
            }
        }
        // A child's block that no template it extends has is never shown.
        for (child, parent, id, _) in &parents {
            let mut have = std::collections::BTreeSet::new();
            let mut at = Some(parent.clone());
            let mut hops = 0;
            while let Some(p) = at.take() {
                let Some((_, text)) = seen.get(&p) else {
                    have.clear();
                    break; // missing: reported above
                };
                let (refs, blocks) = partials::scan(text);
                have.insert(String::new());
                have.extend(blocks.into_iter().map(|b| b.name));
                hops += 1;
                if hops < 32 {
                    at = refs
                        .into_iter()
                        .find(|r| r.kind == RefKind::Extends)
                        .and_then(|r| r.name);
                }
            }
            if have.is_empty() {
                continue;
            }
            let (_, blocks) = partials::scan(&seen[child].1);
            for b in blocks {
                if !have.contains(&b.name) {
                    let msg = format!(
                        "block '{}' is not in '{parent}', which '{child}' extends",
                        b.name
                    );
                    let d = match id {
                        Some(id) => Diagnostic::error(*id, b.span, msg),
                        None => Diagnostic::error(file, field.span, msg),
                    };
                    self.err(d.with_label("its content would never be shown").with_help(format!(
                        "add `{{% block {} %}}{{% endblock %}}` where it belongs in '{parent}', or rename this block",
                        b.name
                    )));
                }
            }
        }
        out
    }
}
