//! Link rewriting in rendered bodies: literal `href`s and URLs of declared links become
//! their tracked URLs, and the open pixel goes before `</body>`.

use super::RenderError;
use std::collections::BTreeMap;

pub(super) fn find_url_start(s: &str) -> Option<usize> {
    let a = s.find("http://");
    let b = s.find("https://");
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Literal `href="URL"` of a declared link becomes its tracked URL (also when the URL is
/// written with `&amp;`).
pub fn rewrite_hrefs(
    html: &str,
    urls: &BTreeMap<String, String>,
    tracked: &BTreeMap<String, String>,
) -> String {
    let mut out = html.to_string();
    for (name, url) in urls {
        if url.is_empty() {
            continue;
        }
        let t = &tracked[name];
        for form in [url.clone(), escape_html(url)] {
            for q in ['"', '\''] {
                out = out.replace(&format!("href={q}{form}{q}"), &format!("href={q}{t}{q}"));
            }
        }
    }
    out
}

/// Declared links' URLs written out in a text become tracked URLs: `tracked(name)` of the
/// link, asked only for the links the text has.
pub(super) fn replace_urls(
    text: &str,
    urls: &BTreeMap<String, String>,
    mut tracked: impl FnMut(&str) -> Result<String, RenderError>,
) -> Result<String, RenderError> {
    let mut out = text.to_string();
    // Longest first, so a URL that is a prefix of another does not break it.
    let mut by_len: Vec<(&String, &String)> = urls.iter().collect();
    by_len.sort_by_key(|(_, u)| std::cmp::Reverse(u.len()));
    for (name, url) in by_len {
        if !url.is_empty() && out.contains(url.as_str()) {
            out = out.replace(url.as_str(), &tracked(name)?);
        }
    }
    Ok(out)
}

pub(super) fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Appends the open pixel before `</body>`, or at the end.
pub fn add_pixel(html: &str, url: &str) -> String {
    let img = format!(
        "<img src=\"{url}\" width=\"1\" height=\"1\" alt=\"\" style=\"display:block;border:0;width:1px;height:1px\">"
    );
    match html.to_ascii_lowercase().rfind("</body>") {
        Some(i) => format!("{}{img}\n{}", &html[..i], &html[i..]),
        None => format!("{html}\n{img}"),
    }
}
