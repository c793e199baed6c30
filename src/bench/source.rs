//! The source of B5 (`journey check` on 1 MB) and of `journey bench lsp`: generated units,
//! each a policy, a segment and a journey using every construct (send on each channel, wait,
//! wait until, check, wait for event, if / else if / else, split random, set, labels, goto,
//! end), with unique names, spread over several files beside a `templates/` folder. The
//! source checks clean.

use std::path::{Path, PathBuf};

/// B5's size: 1 MB of source.
pub const B5_BYTES: usize = 1024 * 1024;
/// B5's number of files.
pub const B5_FILES: usize = 8;

/// Unit `i` of the generated source.
pub fn unit(i: usize) -> String {
    format!(
        r#"# Generated unit {i}: a policy, a segment and a journey using every construct.

policy cap_{i} {{
  title "Caps for unit {i}"
  max 1 email per 1d
  max 2 sms per 1w
  max 5 messages per 1w
  scope journey
  when capped skip
}}

segment buyers_{i} {{
  title "Viewed shoe {i} and did not buy"
  rule viewed:    event "viewed_product" where product_name == "Shoe {i}" at least 2 times in last 15d
  and rule no_buy: no event "purchase" in last 15d
  or rule vip:    contact.tier in ["gold", "vip"] and contact.age >= 18
  except rule opened: opened message where journey == "journey_{i}" within 3d after delivery
}}

journey journey_{i} {{
  title    "Generated journey {i}"
  category "generated"
  label    "bench"

  entry event "signed_up_{i}" where plan == "pro" and (country in ["IT", "FR"] or source starts with "ads")
  entry segment buyers_{i} every monday 09:00 Europe/Rome
  reentry after 30d
  goal event "purchase" where total > 0
  exit event "unsubscribed"
  policy cap_{i}
  quiet 21:00..08:00
  migrate by name

  send email welcome_{i} {{
    subject  "Welcome, {{{{ contact.first_name | default('friend') }}}}"
    template "welcome.html"
    from     "Maison <hello@maison.example>"
    link profile "https://maison.example/profile?c={{{{ contact.id }}}}&u={i}"
  }}

  check clicked welcome_{i}.profile within 3d {{
    yes {{
      send sms promo_{i} {{
        text "Maison: your code is SHOE{i}. Valid 7 days."
      }}
    }}
    no {{
      wait 1d
      nudge: send push nudge_{i} {{
        title "Still thinking about it?"
        body  "Shoe {i} is waiting for you."
        data {{
          screen "product"
          product_id "{i}"
        }}
      }}
      check opened nudge_{i} within 2d {{
        no {{
          if not (count received nudge_{i} >= 2 in last 7d) {{
            goto nudge
          }}
        }}
      }}
    }}
  }}

  wait until friday 18:00 Europe/Rome

  if contact.country == "IT" and in segment buyers_{i} {{
    set contact.vip_{i} = true
  }} else if last opened channel push < 15d ago {{
    wait 2d
  }} else if count event "purchase" where total > 100 >= 1 in last 30d {{
    end
  }} else {{
    send email reminder_{i} {{
      subject "A reminder"
      html """<p>Hello {{{{ contact.first_name }}}},</p>
<p>Shoe {i} is still here.</p>"""
    }}
  }}

  split random {{
    40% hook {{
      send webhook hook_{i} {{
        url     "https://ads.maison.example/audiences/{i}"
        method  POST
        body    "{{\"id\": \"{{{{ contact.id }}}}\"}}"
        header  "Content-Type" "application/json"
        timeout 10s
      }}
    }}
    60% watch {{
      wait for event "purchase" where total > {i} within 7d {{
        yes {{
          bought_{i}: set contact.bought = "shoe {i}"
        }}
      }}
    }}
  }}

  wait until 2026-12-24 09:00
}}

"#
    )
}

/// Writes about `bytes` of source into `dir` as `files` files named `gen_N.journey` (fewer
/// when there are fewer units than files), with `templates/welcome.html`; returns the files
/// and the bytes written.
pub fn generate(dir: &Path, bytes: usize, files: usize) -> std::io::Result<(Vec<PathBuf>, usize)> {
    std::fs::create_dir_all(dir.join("templates"))?;
    std::fs::write(
        dir.join("templates/welcome.html"),
        "<p>Welcome, {{ contact.first_name }}!</p>\n",
    )?;
    let mut texts = vec![String::new(); files.max(1)];
    let (mut total, mut i) = (0, 0);
    while total < bytes || i == 0 {
        let u = unit(i);
        total += u.len();
        let n = texts.len();
        texts[i % n].push_str(&u);
        i += 1;
    }
    let mut paths = Vec::new();
    for (n, text) in texts.iter().enumerate().filter(|(_, t)| !t.is_empty()) {
        let path = dir.join(format!("gen_{n}.journey"));
        std::fs::write(&path, text)?;
        paths.push(path);
    }
    Ok((paths, total))
}
