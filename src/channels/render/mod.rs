//! Rendering a message for one contact: every text of a message (subject, bodies, URLs, SMS
//! texts, push titles, webhook bodies, template files) is a minijinja template that sees
//! `contact` (the profile and `id`), `event` (the entry event's properties, `context` and
//! `type`), `link('name')` (the signed tracked URL of one of the message's links) and
//! `unsubscribe_url`. HTML bodies are auto-escaped; subjects, texts and URLs are not.
//!
//! Emails carry signed tracked URLs (`/t/c/{token}`); SMS and pushes carry short ones
//! (`/s/{code}`), whose claims a `ShortLinks` keeps (the store, in the daemon).
//!
//! A variable that is not there is an error, not an empty string: the error names the
//! journey, the step and the variable, and the delivery is recorded as `message.failed`.

mod links;
mod text;

use super::tracking::{shorten, sign, ShortLinks};
use crate::compile::ir::MessageIr;
use crate::engine::{Claims, TokenKind};
use crate::engine::{Contact, Event, SendJob};
use links::*;
pub use links::{add_pixel, rewrite_hrefs};
use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde_json::Map;
use std::collections::BTreeMap;
use std::sync::Arc;
pub use text::html_to_text;

/// A message that cannot be rendered: a permanent failure, with the reason in words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

/// What a message is rendered from.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub job: &'a SendJob,
    pub message: &'a MessageIr,
    pub contact: &'a Contact,
    /// The event that enrolled the contact, if it entered by an event.
    pub event: Option<&'a Event>,
}

/// A rendered email, before it becomes MIME.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedEmail {
    pub subject: String,
    /// With tracked links and the open pixel; None for a text-only email.
    pub html: Option<String>,
    /// Given, or derived from the HTML.
    pub text: String,
    /// The `from` field rendered, if the message has one.
    pub from: Option<String>,
    pub reply_to: Option<String>,
    pub to: String,
    pub unsubscribe_url: String,
    /// The tracked URL of each declared link, by name.
    pub links: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RenderedSms {
    pub to: String,
    pub text: String,
    /// The codes of the short links in the text, kept (not yet flushed) by the `ShortLinks`.
    pub short_links: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RenderedPush {
    pub title: Option<String>,
    pub body: Option<String>,
    pub data: BTreeMap<String, String>,
    /// Device tokens (FCM, webhook) or Web Push subscriptions (JSON objects).
    pub targets: Vec<serde_json::Value>,
    /// The codes of the short links in the body and data, kept (not yet flushed).
    pub short_links: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RenderedWebhook {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

/// Renders messages; cheap to share between threads.
#[derive(Clone)]
pub struct Renderer {
    inner: Arc<Inner>,
}

struct Inner {
    env: Environment<'static>,
    secret: Vec<u8>,
    public_url: String,
}

/// Names of templates that are HTML (auto-escaped); every other text is plain.
const HTML_NAME: &str = "html";
/// The name of a link's URL template starts with this: its values are percent-encoded.
const LINK_PREFIX: &str = "link ";
/// What a value interpolated into a link's URL keeps: RFC 3986's unreserved characters.
const URL_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

impl Renderer {
    pub fn new(secret: &[u8], public_url: &str) -> Renderer {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        env.set_auto_escape_callback(|name| {
            if name == HTML_NAME || name.ends_with(".html") || name.ends_with(".htm") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        // In a link's URL every interpolated value is percent-encoded, so a value with `&`,
        // `?`, `#`, `/` or CR/LF can neither change the target's query nor break the
        // redirect; `| safe` inserts a value as it is, `| urlencode` is not encoded twice.
        env.set_formatter(|out, state, value| {
            if state.name().starts_with(LINK_PREFIX) && !value.is_safe() {
                if value.is_undefined() || value.is_none() {
                    return Ok(());
                }
                let text = value.to_string();
                write!(
                    out,
                    "{}",
                    percent_encoding::utf8_percent_encode(&text, URL_VALUE)
                )
                .map_err(|_| minijinja::Error::new(ErrorKind::WriteFailure, "write failed"))
            } else {
                minijinja::escape_formatter(out, state, value)
            }
        });
        env.add_filter("urlencode", |v: &Value| {
            minijinja::filters::urlencode(v).map(Value::from_safe_string)
        });
        Renderer {
            inner: Arc::new(Inner {
                env,
                secret: secret.to_vec(),
                public_url: public_url.trim_end_matches('/').to_string(),
            }),
        }
    }

    pub fn public_url(&self) -> &str {
        &self.inner.public_url
    }

    /// The signed URL of a click on `link` (rendered to `url`) of this job's message.
    pub fn click_url(&self, job: &SendJob, link: Option<&str>, url: &str) -> String {
        let token = sign(
            &self.inner.secret,
            &Claims {
                kind: TokenKind::Click,
                link: link.map(String::from),
                url: Some(url.to_string()),
                ..claims(job, TokenKind::Click)
            },
        );
        format!("{}/t/c/{token}", self.inner.public_url)
    }

    /// The short URL of a click on `link` (rendered to `url`) of this job's message: its
    /// claims kept by `book` under their code. Returns the URL and the code.
    pub fn short_url(
        &self,
        job: &SendJob,
        link: Option<&str>,
        url: &str,
        book: &dyn ShortLinks,
    ) -> Result<(String, String), String> {
        let claims = Claims {
            link: link.map(String::from),
            url: Some(url.to_string()),
            ..claims(job, TokenKind::Click)
        };
        let code = shorten(&self.inner.secret, &claims, book)?;
        Ok((format!("{}/s/{code}", self.inner.public_url), code))
    }

    pub fn open_url(&self, job: &SendJob) -> String {
        let token = sign(&self.inner.secret, &claims(job, TokenKind::Open));
        format!("{}/t/o/{token}", self.inner.public_url)
    }

    pub fn unsubscribe_url(&self, job: &SendJob) -> String {
        let token = sign(&self.inner.secret, &claims(job, TokenKind::Unsubscribe));
        format!("{}/u/{token}", self.inner.public_url)
    }

    /// A signed token for delivery reports about this job (the Kannel `dlr-url`).
    pub fn delivery_token(&self, job: &SendJob) -> String {
        sign(&self.inner.secret, &claims(job, TokenKind::Delivery))
    }

    /// Prepares the variables of one message: renders the links' URLs, signs their tracked
    /// URLs and the unsubscribe URL.
    fn prepare(&self, src: &Source) -> Result<Prepared, RenderError> {
        let mut contact: Map<String, serde_json::Value> = src.contact.profile.clone();
        contact.insert("id".into(), src.contact.id.clone().into());
        let mut event: Map<String, serde_json::Value> = Map::new();
        if let Some(e) = src.event {
            event = e.properties.clone();
            if let Some(c) = &e.context {
                event.insert("context".into(), c.clone().into());
            }
            event.insert("type".into(), e.kind.clone().into());
        }
        let unsubscribe_url = self.unsubscribe_url(src.job);
        let base = minijinja::context! {
            contact => Value::from(minijinja::value::Serde(&contact)),
            event => Value::from(minijinja::value::Serde(&event)),
            unsubscribe_url => Value::from_safe_string(unsubscribe_url.clone()),
        };
        let mut link_urls = BTreeMap::new();
        let mut tracked = BTreeMap::new();
        for (name, template) in &src.message.links {
            let what = format!("{LINK_PREFIX}{name}");
            let url = self.render_str(src, &what, template, base.clone())?;
            let url = url.trim().to_string();
            if url.chars().any(char::is_control) {
                return Err(RenderError(format!(
                    "journey '{}', step '{}', {what}: the URL has a control character",
                    src.job.journey, src.job.step
                )));
            }
            tracked.insert(name.clone(), self.click_url(src.job, Some(name), &url));
            link_urls.insert(name.clone(), url);
        }
        let for_fn = tracked.clone();
        let journey = src.job.journey.clone();
        let message = src.job.message.clone();
        let link = Value::from_function(move |name: &str| -> Result<Value, minijinja::Error> {
            match for_fn.get(name) {
                Some(u) => Ok(Value::from_safe_string(u.clone())),
                None => Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "message '{message}' of journey '{journey}' has no link '{name}' (declare it with `link {name} \"https://…\"`)"
                    ),
                )),
            }
        });
        let vars = minijinja::context! { link => link, ..base };
        Ok(Prepared {
            vars,
            link_urls,
            tracked,
            unsubscribe_url,
        })
    }

    /// Renders one text of a message. `what` names it in errors (`subject`, a template file…);
    /// HTML is escaped when `what` ends with `.html` or is `html`.
    fn render_str(
        &self,
        src: &Source,
        what: &str,
        template: &str,
        vars: Value,
    ) -> Result<String, RenderError> {
        if !src.message.partials.is_empty() {
            return self.render_with_partials(src, what, template, vars);
        }
        let env = &self.inner.env;
        let tmpl = env
            .template_from_named_str(what, template)
            .map_err(|e| self.error(src, what, template, &e))?;
        tmpl.render(vars)
            .map_err(|e| self.error(src, what, template, &e))
    }

    /// `render_str` for a message whose template uses partials: they are served from the
    /// message's IR (read when it was compiled), never from disk, so nothing outside the
    /// templates folder, and nothing newer than the deployed version, can be included.
    fn render_with_partials(
        &self,
        src: &Source,
        what: &str,
        template: &str,
        vars: Value,
    ) -> Result<String, RenderError> {
        let mut env = self.inner.env.clone();
        let partials = src.message.partials.clone();
        env.set_loader(move |name| Ok(partials.get(name).cloned()));
        let tmpl = env
            .template_from_named_str(what, template)
            .map_err(|e| self.error(src, what, template, &e))?;
        tmpl.render(vars).map_err(|outer| {
            // An error inside a partial (wrapped by each include) names the partial and its line.
            let mut e = &outer;
            while let Some(inner) =
                std::error::Error::source(e).and_then(|s| s.downcast_ref::<minijinja::Error>())
            {
                e = inner;
            }
            let (name, text) = match e.name() {
                Some(n) if n != what => (n, src.message.partials.get(n).map_or("", |t| t)),
                _ => (what, template),
            };
            self.error(src, name, text, e)
        })
    }

    fn error(&self, src: &Source, what: &str, template: &str, e: &minijinja::Error) -> RenderError {
        let place = format!(
            "journey '{}', step '{}', {}",
            src.job.journey, src.job.step, what
        );
        let line = e.line().map(|l| format!(" line {l}")).unwrap_or_default();
        if e.kind() == ErrorKind::UndefinedError {
            let var = undefined_name(e, template).unwrap_or_else(|| "?".into());
            return RenderError(format!(
                "{place}{line}: undefined variable '{var}' (give it a default: {{{{ {var} | default('…') }}}})"
            ));
        }
        let detail = e
            .detail()
            .map(String::from)
            .unwrap_or_else(|| e.to_string());
        RenderError(format!("{place}{line}: {detail}"))
    }

    pub fn email(
        &self,
        src: &Source,
        default_to: Option<&str>,
    ) -> Result<RenderedEmail, RenderError> {
        let p = self.prepare(src)?;
        let f = &src.message.fields;
        let text_field = |key: &str| -> Result<Option<String>, RenderError> {
            f.get(key)
                .map(|t| self.render_str(src, key, t, p.vars.clone()))
                .transpose()
        };
        let subject = text_field("subject")?
            .unwrap_or_default()
            .trim()
            .replace(['\r', '\n'], " ");
        let html = match (
            &src.message.template_source,
            f.get("template"),
            f.get("html"),
        ) {
            (Some(_), Some(name), _) if is_text_name(name) => None,
            (Some(source), Some(name), _) => {
                Some(self.render_str(src, &template_name(name), source, p.vars.clone())?)
            }
            (_, _, Some(inline)) => {
                Some(self.render_str(src, HTML_NAME, inline, p.vars.clone())?)
            }
            _ => None,
        };
        let html = html.map(|h| {
            let h = rewrite_hrefs(&h, &p.link_urls, &p.tracked);
            add_pixel(&h, &self.open_url(src.job))
        });
        // A `.txt` template file is the text part.
        let text_template = match (&src.message.template_source, f.get("template")) {
            (Some(source), Some(name)) if is_text_name(name) => {
                Some(self.render_str(src, name, source, p.vars.clone())?)
            }
            _ => None,
        };
        let text = match text_field("text")?.or(text_template) {
            Some(t) => replace_urls(&t, &p.link_urls, |n| Ok(p.tracked[n].clone()))?,
            None => html.as_deref().map(html_to_text).unwrap_or_default(),
        };
        let to = match text_field("to")? {
            Some(t) => t.trim().to_string(),
            None => match src.contact.profile.get("email").and_then(|v| v.as_str()) {
                Some(e) => e.to_string(),
                None => match default_to {
                    Some(d) => d.to_string(),
                    None => {
                        return Err(RenderError(format!(
                            "journey '{}', step '{}': contact '{}' has no email",
                            src.job.journey, src.job.step, src.contact.id
                        )))
                    }
                },
            },
        };
        Ok(RenderedEmail {
            subject,
            html,
            text,
            from: text_field("from")?.map(|s| s.trim().to_string()),
            reply_to: text_field("reply_to")?.map(|s| s.trim().to_string()),
            to,
            unsubscribe_url: p.unsubscribe_url,
            links: p.tracked,
        })
    }

    /// An SMS: every http(s) URL of its text becomes a short tracked URL, its claims kept
    /// by `book`.
    pub fn sms(&self, src: &Source, book: &dyn ShortLinks) -> Result<RenderedSms, RenderError> {
        let p = self.prepare(src)?;
        let f = &src.message.fields;
        let text = match f.get("text") {
            Some(t) => self.render_str(src, "text", t, p.vars.clone())?,
            None => String::new(),
        };
        let mut links = Shortener::new(self, src, book);
        let text = self.track_all_urls(&text, &p, &mut links)?;
        let to = match f.get("to") {
            Some(t) => self
                .render_str(src, "to", t, p.vars.clone())?
                .trim()
                .to_string(),
            None => profile_str(src.contact, "phone").ok_or_else(|| {
                RenderError(format!(
                    "journey '{}', step '{}': contact '{}' has no phone",
                    src.job.journey, src.job.step, src.contact.id
                ))
            })?,
        };
        Ok(RenderedSms {
            to,
            text,
            short_links: links.codes,
        })
    }

    /// A push: declared links in its body and data (by `link('name')` or their URL) become
    /// short tracked URLs, their claims kept by `book`; other URLs (images…) stay.
    pub fn push(&self, src: &Source, book: &dyn ShortLinks) -> Result<RenderedPush, RenderError> {
        let p = self.prepare(src)?;
        let mut links = Shortener::new(self, src, book);
        let f = &src.message.fields;
        let field = |key: &str| -> Result<Option<String>, RenderError> {
            f.get(key)
                .map(|t| self.render_str(src, key, t, p.vars.clone()))
                .transpose()
        };
        let title = field("title")?;
        let body = field("body")?.map(|b| links.declared(&b, &p)).transpose()?;
        let mut data = BTreeMap::new();
        for (k, t) in &src.message.data {
            let v = self.render_str(src, &format!("data {k}"), t, p.vars.clone())?;
            data.insert(k.clone(), links.declared(&v, &p)?);
        }
        let targets = match field("to")? {
            Some(t) => {
                let t = t.trim();
                // A subscription object (Web Push) or a token.
                match serde_json::from_str::<serde_json::Value>(t) {
                    Ok(v @ serde_json::Value::Object(_)) => vec![v],
                    _ => vec![serde_json::Value::String(t.to_string())],
                }
            }
            None => match src.contact.profile.get("push_tokens") {
                Some(serde_json::Value::Array(a)) => a.clone(),
                Some(v @ (serde_json::Value::String(_) | serde_json::Value::Object(_))) => {
                    vec![v.clone()]
                }
                _ => Vec::new(),
            },
        };
        if targets.is_empty() {
            return Err(RenderError(format!(
                "journey '{}', step '{}': contact '{}' has no push_tokens",
                src.job.journey, src.job.step, src.contact.id
            )));
        }
        Ok(RenderedPush {
            title,
            body,
            data,
            targets,
            short_links: links.codes,
        })
    }

    pub fn webhook(&self, src: &Source) -> Result<RenderedWebhook, RenderError> {
        let p = self.prepare(src)?;
        let f = &src.message.fields;
        let url = match f.get("url") {
            Some(t) => self
                .render_str(src, "url", t, p.vars.clone())?
                .trim()
                .to_string(),
            None => String::new(),
        };
        let body = f
            .get("body")
            .map(|t| self.render_str(src, "body", t, p.vars.clone()))
            .transpose()?;
        let mut headers = Vec::new();
        for (name, t) in &src.message.headers {
            let v = self.render_str(src, &format!("header {name}"), t, p.vars.clone())?;
            headers.push((name.clone(), v.trim().replace(['\r', '\n'], " ")));
        }
        Ok(RenderedWebhook {
            method: f
                .get("method")
                .map(|m| m.to_ascii_uppercase())
                .unwrap_or_else(|| "POST".into()),
            url,
            headers,
            body,
        })
    }

    /// Every http(s) URL of a text becomes a short tracked URL: declared links (and what
    /// `link('name')` gave) by name, others without one. Other URLs on our base URL stay.
    fn track_all_urls(
        &self,
        text: &str,
        p: &Prepared,
        links: &mut Shortener,
    ) -> Result<String, RenderError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = find_url_start(rest) {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
                .unwrap_or(tail.len());
            let mut url = &tail[..end];
            // Trailing punctuation belongs to the sentence.
            while url.ends_with(['.', ',', ';', ':', '!', '?', ')']) {
                url = &url[..url.len() - 1];
            }
            let by_link = p.tracked.iter().find(|(_, t)| t.as_str() == url);
            if let Some((name, _)) = by_link {
                out.push_str(&links.url(Some(name), &p.link_urls[name])?);
            } else if url.starts_with(&self.inner.public_url) {
                out.push_str(url);
            } else {
                let name = p
                    .link_urls
                    .iter()
                    .find(|(_, u)| u.as_str() == url)
                    .map(|(n, _)| n.as_str());
                out.push_str(&links.url(name, url)?);
            }
            rest = &tail[url.len()..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

struct Prepared {
    vars: Value,
    /// Each link's rendered target.
    link_urls: BTreeMap<String, String>,
    /// Each link's tracked URL.
    tracked: BTreeMap<String, String>,
    unsubscribe_url: String,
}

/// The short links of one message, made as its texts use them: each (link, target) once.
struct Shortener<'a> {
    renderer: &'a Renderer,
    src: &'a Source<'a>,
    book: &'a dyn ShortLinks,
    made: BTreeMap<(Option<String>, String), String>,
    codes: Vec<String>,
}

impl<'a> Shortener<'a> {
    fn new(renderer: &'a Renderer, src: &'a Source<'a>, book: &'a dyn ShortLinks) -> Self {
        Shortener {
            renderer,
            src,
            book,
            made: BTreeMap::new(),
            codes: Vec::new(),
        }
    }

    /// The short URL of a click on `link`, going to `target`.
    fn url(&mut self, link: Option<&str>, target: &str) -> Result<String, RenderError> {
        let k = (link.map(String::from), target.to_string());
        if let Some(u) = self.made.get(&k) {
            return Ok(u.clone());
        }
        let job = self.src.job;
        let (url, code) = self
            .renderer
            .short_url(job, link, target, self.book)
            .map_err(|e| {
                RenderError(format!(
                    "journey '{}', step '{}': cannot keep a short link: {e}",
                    job.journey, job.step
                ))
            })?;
        self.codes.push(code);
        self.made.insert(k, url.clone());
        Ok(url)
    }

    /// Declared links in a text, as `link('name')` gave them or written out, become short
    /// tracked URLs.
    fn declared(&mut self, text: &str, p: &Prepared) -> Result<String, RenderError> {
        let mut out = text.to_string();
        for (name, signed) in &p.tracked {
            if out.contains(signed.as_str()) {
                let short = self.url(Some(name), &p.link_urls[name])?;
                out = out.replace(signed.as_str(), &short);
            }
        }
        replace_urls(&out, &p.link_urls, |name| {
            self.url(Some(name), &p.link_urls[name])
        })
    }
}

fn claims(job: &SendJob, kind: TokenKind) -> Claims {
    Claims {
        kind,
        contact: job.contact.clone(),
        message_id: job.message_id.clone(),
        journey: job.journey.clone(),
        message: job.message.clone(),
        link: None,
        url: None,
    }
}

fn profile_str(c: &Contact, key: &str) -> Option<String> {
    match c.profile.get(key)? {
        serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn is_text_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".txt") || lower.ends_with(".text")
}

/// A template file is rendered as HTML unless its name says it is text.
fn template_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    let known = [".txt", ".text", ".html", ".htm"];
    if known.iter().any(|e| lower.ends_with(e)) {
        name.to_string()
    } else {
        format!("{name}.html")
    }
}

/// The name of the undefined variable an error is about: the expression at the error's
/// place in the template (`contact.last_name`), or the first unknown name on its line.
fn undefined_name(e: &minijinja::Error, template: &str) -> Option<String> {
    if let Some(r) = e.range() {
        if let Some(expr) = template.get(r) {
            let expr = expr.trim();
            let expr = expr.split('|').next().unwrap_or(expr).trim();
            if !expr.is_empty() && expr.len() < 80 {
                return Some(expr.to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::tracking::verify;
    use crate::domain::Channel;
    use crate::engine::TokenKind;

    fn job() -> SendJob {
        SendJob {
            message_id: "7:welcome".into(),
            instance: 7,
            journey: "welcome_promo".into(),
            version: "v1".into(),
            contact: "angela".into(),
            message: "welcome".into(),
            step: "welcome".into(),
            channel: Channel::Email,
            label: None,
            created_at: 0,
        }
    }

    fn message(fields: &[(&str, &str)], links: &[(&str, &str)]) -> MessageIr {
        MessageIr {
            name: "welcome".into(),
            channel: Channel::Email,
            step: "welcome".into(),
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            links: links
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            headers: Vec::new(),
            data: BTreeMap::new(),
            timeout_seconds: None,
            template_source: None,
            partials: BTreeMap::new(),
        }
    }

    fn contact() -> Contact {
        let mut c = Contact {
            id: "angela".into(),
            profile: Map::new(),
        };
        c.profile
            .insert("email".into(), "angela@example.com".into());
        c.profile.insert("first_name".into(), "<Angela>".into());
        c
    }

    const SECRET: &[u8] = b"secret";

    fn r() -> Renderer {
        Renderer::new(SECRET, "http://t.example/")
    }

    #[test]
    fn values_in_a_links_url_are_percent_encoded_once() {
        let m = message(
            &[("subject", "s"), ("html", "<a href=\"{{ link('p') }}\">p</a>")],
            &[(
                "p",
                "https://m.example/p?c={{ contact.id }}&n={{ contact.first_name | urlencode }}&s={{ contact.email | safe }}",
            )],
        );
        let j = job();
        let mut c = contact();
        c.id = "a&b=c\r\n#".into();
        let e = r()
            .email(
                &Source {
                    job: &j,
                    message: &m,
                    contact: &c,
                    event: None,
                },
                None,
            )
            .unwrap();
        let claims = verify(SECRET, e.links["p"].rsplit('/').next().unwrap()).unwrap();
        assert_eq!(
            claims.url.as_deref(),
            Some("https://m.example/p?c=a%26b%3Dc%0D%0A%23&n=%3CAngela%3E&s=angela@example.com")
        );
    }

    #[test]
    fn html_is_escaped_subject_is_not_and_links_are_tracked() {
        let m = message(
            &[
                ("subject", "Hi {{ contact.first_name }} & co"),
                (
                    "html",
                    "<html><body><p>Hi {{ contact.first_name }}</p><a href=\"{{ link('profile') }}\">go</a> <a href='https://maison.example/p?c=angela&amp;x=1'>lit</a></body></html>",
                ),
            ],
            &[
                ("profile", "https://maison.example/profile?c={{ contact.id }}"),
                ("lit", "https://maison.example/p?c={{ contact.id }}&x=1"),
            ],
        );
        let (j, c) = (job(), contact());
        let e = r()
            .email(
                &Source {
                    job: &j,
                    message: &m,
                    contact: &c,
                    event: None,
                },
                None,
            )
            .unwrap();
        assert_eq!(e.subject, "Hi <Angela> & co");
        let html = e.html.unwrap();
        assert!(html.contains("<p>Hi &lt;Angela&gt;</p>"), "{html}");
        assert!(
            !html.contains("https://maison.example"),
            "links tracked: {html}"
        );
        let prof = &e.links["profile"];
        assert!(prof.starts_with("http://t.example/t/c/"));
        assert!(html.contains(&format!("href=\"{prof}\"")));
        assert!(html.contains(&format!("href='{}'", e.links["lit"])));
        let claims = verify(SECRET, prof.rsplit('/').next().unwrap()).unwrap();
        assert_eq!(
            claims.url.as_deref(),
            Some("https://maison.example/profile?c=angela")
        );
        assert_eq!(claims.link.as_deref(), Some("profile"));
        assert_eq!(claims.message_id, "7:welcome");
        // The pixel, before </body>.
        assert!(html.contains("<img src=\"http://t.example/t/o/"), "{html}");
        assert!(html.find("/t/o/").unwrap() < html.find("</body>").unwrap());
        // The text part is derived, with the tracked links.
        assert!(e.text.contains("Hi <Angela>"), "{}", e.text);
        assert!(e.text.contains(&format!("go ({prof})")), "{}", e.text);
        assert_eq!(e.to, "angela@example.com");
    }

    #[test]
    fn an_undefined_variable_names_journey_step_and_variable() {
        let m = message(
            &[("subject", "Hi {{ contact.last_name }}"), ("text", "x")],
            &[],
        );
        let (j, c) = (job(), contact());
        let err = r()
            .email(
                &Source {
                    job: &j,
                    message: &m,
                    contact: &c,
                    event: None,
                },
                None,
            )
            .unwrap_err();
        assert_eq!(
            err.0,
            "journey 'welcome_promo', step 'welcome', subject line 1: undefined variable 'contact.last_name' (give it a default: {{ contact.last_name | default('…') }})"
        );
        // A default makes it fine, and so does `if`.
        let m = message(
            &[
                ("subject", "Hi {{ contact.last_name | default('friend') }}"),
                (
                    "text",
                    "{% if contact.vip %}VIP{% endif %}{{ event.nothing | default('-') }}",
                ),
            ],
            &[],
        );
        let e = r()
            .email(
                &Source {
                    job: &j,
                    message: &m,
                    contact: &c,
                    event: None,
                },
                None,
            )
            .unwrap();
        assert_eq!(e.subject, "Hi friend");
        assert_eq!(e.text, "-");
        // Unknown links are named too.
        let m = message(&[("subject", "s"), ("text", "{{ link('nope') }}")], &[]);
        let err = r()
            .email(
                &Source {
                    job: &j,
                    message: &m,
                    contact: &c,
                    event: None,
                },
                None,
            )
            .unwrap_err();
        assert!(err.0.contains("has no link 'nope'"), "{}", err.0);
    }

    #[test]
    fn event_variables_come_from_the_entry_event() {
        let m = message(
            &[
                ("subject", "{{ event.product }} ({{ event.context }})"),
                ("text", "t"),
            ],
            &[],
        );
        let (j, c) = (job(), contact());
        let mut ev = Event {
            contact: "angela".into(),
            kind: "viewed".into(),
            context: Some("web".into()),
            ..Default::default()
        };
        ev.properties.insert("product".into(), "Red Shoes".into());
        let e = r()
            .email(
                &Source {
                    job: &j,
                    message: &m,
                    contact: &c,
                    event: Some(&ev),
                },
                None,
            )
            .unwrap();
        assert_eq!(e.subject, "Red Shoes (web)");
    }

    #[test]
    fn sms_links_become_short_tracked_urls() {
        let mut m = message(
            &[(
                "text",
                "Hi {{ contact.first_name }}: {{ link('shop') }} or https://other.example/x. Again: https://maison.example/shop",
            )],
            &[("shop", "https://maison.example/shop")],
        );
        m.channel = Channel::Sms;
        let (j, mut c) = (job(), contact());
        c.profile.insert("phone".into(), "+393331234567".into());
        let store = crate::channels::tracking::MemoryShortLinks::default();
        let src = Source {
            job: &j,
            message: &m,
            contact: &c,
            event: None,
        };
        let s = r().sms(&src, &store).unwrap();
        assert_eq!(s.to, "+393331234567");
        let urls: Vec<&str> = s
            .text
            .split_whitespace()
            .filter(|w| w.starts_with("http"))
            .map(|w| w.trim_end_matches('.'))
            .collect();
        assert_eq!(urls.len(), 3, "{}", s.text);
        for u in &urls {
            let code = u.strip_prefix("http://t.example/s/").expect(&s.text);
            assert!(crate::channels::tracking::is_short_code(code), "{u}");
        }
        assert_eq!(
            urls[0], urls[2],
            "the link by name and written out: one code"
        );
        assert_ne!(urls[0], urls[1]);
        assert_eq!(s.short_links.len(), 2);
        assert_eq!(
            s.text,
            format!(
                "Hi <Angela>: {} or {}. Again: {}",
                urls[0], urls[1], urls[2]
            )
        );
        let shop = store.get(&s.short_links[0]).unwrap();
        assert_eq!(shop.kind, TokenKind::Click);
        assert_eq!(shop.link.as_deref(), Some("shop"));
        assert_eq!(shop.url.as_deref(), Some("https://maison.example/shop"));
        assert_eq!(shop.message_id, "7:welcome");
        assert_eq!(shop.contact, "angela");
        let other = store.get(&s.short_links[1]).unwrap();
        assert_eq!(other.url.as_deref(), Some("https://other.example/x"));
        assert_eq!(other.link, None);
        // A retried send renders the same text.
        assert_eq!(r().sms(&src, &store).unwrap(), s);
    }

    #[test]
    fn push_links_are_short_other_urls_stay() {
        let mut m = message(
            &[
                ("title", "Hi"),
                ("body", "New: {{ link('shop') }}"),
                ("to", "tok"),
            ],
            &[("shop", "https://maison.example/shop")],
        );
        m.channel = Channel::Push;
        m.data
            .insert("url".into(), "https://maison.example/shop".into());
        m.data
            .insert("image".into(), "https://cdn.example/shoe.png".into());
        let (j, c) = (job(), contact());
        let store = crate::channels::tracking::MemoryShortLinks::default();
        let p = r()
            .push(
                &Source {
                    job: &j,
                    message: &m,
                    contact: &c,
                    event: None,
                },
                &store,
            )
            .unwrap();
        assert_eq!(p.short_links.len(), 1);
        let short = format!("http://t.example/s/{}", p.short_links[0]);
        assert_eq!(p.body.as_deref(), Some(format!("New: {short}").as_str()));
        assert_eq!(p.data["url"], short);
        assert_eq!(p.data["image"], "https://cdn.example/shoe.png");
    }

    #[test]
    fn html_to_text_is_readable() {
        let t = html_to_text(
            "<html><head><title>T</title><style>p{}</style></head><body><h1>Hello &amp; welcome</h1>\n<p>Line   one<br>two</p><ul><li>a</li><li>b</li></ul><a href=\"http://x/y?a=1&amp;b=2\">click</a><!-- c --></body></html>",
        );
        assert_eq!(
            t,
            "Hello & welcome\n\nLine one\ntwo\n\n- a\n- b\n\nclick (http://x/y?a=1&b=2)\n"
        );
    }
}
