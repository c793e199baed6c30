//! Template partials: `{% include %}` and `{% extends %}` from the templates folder, read
//! into the IR at compile time (so a partial's change is a new version), served to the
//! renderer from there (never from disk), and path-safe.

use journey::channels::render::{Renderer, Source};
use journey::compile::{self, ir::Program};
use journey::domain::Channel;
use journey::engine::{Contact, SendJob};
use journey::lang;
use std::path::Path;

const JOURNEY: &str = r#"journey welcome {
  entry api
  send email hello {
    subject "Welcome"
    template "welcome.html"
    link shop "https://maison.example/shop"
  }
}
"#;

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

fn compile_dir(dir: &Path) -> Result<Program, String> {
    let loaded = lang::load_files(&[dir.join("main.journey")]);
    let c = compile::compile(&loaded);
    c.program
        .ok_or_else(|| lang::diagnostic::render_human(&loaded.sources, &c.diagnostics, false))
}

fn base_files() -> Vec<(&'static str, &'static str)> {
    vec![
        ("main.journey", JOURNEY),
        (
            "templates/welcome.html",
            "{% extends \"layout/base.html\" %}{% block body %}<p>Hi {{ contact.first_name }}</p><a href=\"{{ link('shop') }}\">shop</a>{% endblock %}",
        ),
        (
            "templates/layout/base.html",
            "<html><body>{% block body %}{% endblock %}{% include \"partials/footer.html\" %}</body></html>",
        ),
        (
            "templates/partials/footer.html",
            "<footer>{{ contact.first_name }}: <a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></footer>",
        ),
    ]
}

fn render(p: &Program, first_name: &str) -> Result<String, String> {
    let j = &p.journeys["welcome"];
    let m = &j.messages["hello"];
    let job = SendJob {
        message_id: "1:hello".into(),
        instance: 1,
        journey: "welcome".into(),
        version: j.content_hash(),
        contact: "ann".into(),
        message: "hello".into(),
        step: "hello".into(),
        channel: Channel::Email,
        label: None,
        created_at: 0,
    };
    let mut contact = Contact {
        id: "ann".into(),
        profile: Default::default(),
    };
    contact
        .profile
        .insert("email".into(), "ann@example.com".into());
    contact
        .profile
        .insert("first_name".into(), first_name.into());
    let src = Source {
        job: &job,
        message: m,
        contact: &contact,
        event: None,
    };
    Renderer::new(b"s", "http://t.example")
        .email(&src, None)
        .map(|e| e.html.unwrap())
        .map_err(|e| e.0)
}

#[test]
fn extends_and_include_render_from_the_ir_with_escaping_and_tracking() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &base_files());
    let p = compile_dir(dir.path()).unwrap();
    let m = &p.journeys["welcome"].messages["hello"];
    assert_eq!(
        m.partials.keys().collect::<Vec<_>>(),
        ["layout/base.html", "partials/footer.html"]
    );
    // Removing the files changes nothing: the partials come from the IR.
    std::fs::remove_dir_all(dir.path().join("templates")).unwrap();
    let html = render(&p, "<Ann>").unwrap();
    assert!(
        html.starts_with("<html><body><p>Hi &lt;Ann&gt;</p>"),
        "{html}"
    );
    assert!(
        html.contains("<footer>&lt;Ann&gt;: <a href=\"http://t.example/u/"),
        "{html}"
    );
    assert!(
        html.contains("href=\"http://t.example/t/c/"),
        "link tracked: {html}"
    );
}

#[test]
fn a_partials_change_is_a_new_version_of_the_journeys_that_use_it() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &base_files());
    let before = compile_dir(dir.path()).unwrap().journeys["welcome"].content_hash();
    // An unused file changes nothing.
    write(dir.path(), &[("templates/partials/other.html", "x")]);
    let same = compile_dir(dir.path()).unwrap().journeys["welcome"].content_hash();
    assert_eq!(before, same);
    write(
        dir.path(),
        &[("templates/partials/footer.html", "<footer>Bye</footer>")],
    );
    let after = compile_dir(dir.path()).unwrap().journeys["welcome"].content_hash();
    assert_ne!(before, after);
}

#[test]
fn a_journey_without_partials_keeps_its_version() {
    // The IR of a message without partials serializes as before (no `partials` key), so
    // upgrading does not make new versions of deployed journeys.
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("main.journey", JOURNEY),
            ("templates/welcome.html", "<p>Hi</p>"),
        ],
    );
    let p = compile_dir(dir.path()).unwrap();
    let json = serde_json::to_string(&p.journeys["welcome"]).unwrap();
    assert!(!json.contains("partials"), "{json}");
}

#[test]
fn an_error_inside_a_partial_names_the_partial_and_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = base_files();
    files[3] = (
        "templates/partials/footer.html",
        "<footer>\n{{ contact.city }}\n</footer>",
    );
    write(dir.path(), &files);
    let p = compile_dir(dir.path()).unwrap();
    let err = render(&p, "Ann").unwrap_err();
    assert!(
        err.contains("partials/footer.html line 2: undefined variable 'contact.city'"),
        "{err}"
    );
}

#[test]
fn partials_outside_the_templates_folder_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("main.journey", JOURNEY),
            ("secret.html", "top secret"),
            ("templates/welcome.html", "{% include \"../secret.html\" %}"),
        ],
    );
    let err = compile_dir(dir.path()).unwrap_err();
    assert!(
        err.contains(
            "templates/welcome.html:1:12: error: partial '../secret.html' is outside templates/"
        ),
        "{err}"
    );
    // A name computed at run time cannot be checked, so it is refused too.
    write(
        dir.path(),
        &[("templates/welcome.html", "{% include contact.partial %}")],
    );
    let err = compile_dir(dir.path()).unwrap_err();
    assert!(err.contains("is not a text"), "{err}");
}

#[test]
fn check_warns_of_unknown_variables_in_partials() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = base_files();
    files[3] = (
        "templates/partials/footer.html",
        "<footer>{{ contcat.first_name }}</footer>",
    );
    write(dir.path(), &files);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_journey"))
        .arg("check")
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a warning, not an error: {err}");
    assert!(
        err.contains(
            "warning: message 'hello', partials/footer.html: unknown variable 'contcat.first_name'"
        ),
        "{err}"
    );
}

#[test]
fn unreadable_or_missing_templates_are_errors_with_the_reason_and_a_hint() {
    // Compiling reads no files: templates come in with the loaded sources, and a file that
    // `lang` could not read is reported with its reason when a journey names it.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), &[("main.journey", JOURNEY)]);
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    std::fs::write(
        dir.path().join("templates/welcome.html"),
        b"<p>\xff\xfe</p>",
    )
    .unwrap();
    let err = compile_dir(dir.path()).unwrap_err();
    assert!(
        err.contains("template 'welcome.html' cannot be read: it is not valid UTF-8 text"),
        "{err}"
    );

    std::fs::remove_file(dir.path().join("templates/welcome.html")).unwrap();
    std::fs::write(dir.path().join("templates/welcome.htm"), "<p>hi</p>").unwrap();
    let err = compile_dir(dir.path()).unwrap_err();
    assert!(
        err.contains("template 'welcome.html' cannot be read: no such file"),
        "{err}"
    );
    assert!(
        err.contains("welcome.htm"),
        "the hint names the file that exists: {err}"
    );
}
