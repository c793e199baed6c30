//! The crash test's child (`journey bench crash-child`): a journey on the system clock
//! over a store, printing progress, until killed or done.

use super::{program_from, AnyResult};
use crate::engine::{Event, Happening, Millis, SendJob, TimelineEntry};
use crate::runtime::live::{run_live, LoopConfig, Submission};
use crate::runtime::Clock;
use crate::runtime::{Delivery, Input, Runtime, Sink, SystemClock};
use crate::store::Store;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::sync::Arc;

const CRASH_JOURNEY: &str = r#"
journey crash {
  entry event "signup"
  policy none
  send email first {
    subject "First"
    text "First"
  }
  wait 1s
  send email second {
    subject "Second"
    text "Second"
  }
  check clicked second within 2s {
    yes { end }
    no { end }
  }
}
"#;

/// Appends each delivered message id to a file, flushed per delivery.
struct FileSink(std::fs::File);

impl Sink for FileSink {
    fn deliver(&mut self, job: &SendJob, _now: Millis) -> Delivery {
        match writeln!(self.0, "{}", job.message_id).and_then(|_| self.0.flush()) {
            Ok(()) => Delivery::Sent,
            Err(e) => Delivery::Failed(e.to_string()),
        }
    }
}

pub fn crash_child(dir: PathBuf, n: usize, deliveries: PathBuf, resume: bool) -> AnyResult<()> {
    let program = program_from(CRASH_JOURNEY)?;
    let clock = SystemClock;
    // The directory of a sled store, or a PostgreSQL URL.
    let store = Store::open_location(&dir.to_string_lossy())?;
    store.claim_exclusive()?;
    let mut rt = Runtime::new(store, clock.now(), chrono_tz::UTC)?;
    rt.deploy(program, clock.now())?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&deliveries)?;
    let mut sink = FileSink(file);
    let (tx, rx) = mpsc::channel::<Submission>();
    let stop = Arc::new(AtomicBool::new(false));
    let out = std::io::stdout();
    if !resume {
        let producer_tx = tx.clone();
        std::thread::spawn(move || {
            for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
                let now = SystemClock.now();
                let inputs = chunk
                    .iter()
                    .map(|i| {
                        Input::Event(Event {
                            id: Some(format!("signup-{i}")),
                            contact: format!("c{i}"),
                            kind: "signup".into(),
                            at: now,
                            ..Event::default()
                        })
                    })
                    .collect();
                let (submission, ack_rx) = Submission::with_channel(inputs);
                if producer_tx.send(submission).is_err() {
                    return;
                }
                // Acknowledged means durable: the parent may count these contacts.
                if let Ok(Ok(())) = ack_rx.recv() {
                    let last = chunk.last().copied().unwrap_or(0);
                    println!("acked {}", last + 1);
                }
            }
        });
    }
    drop(tx);
    let mut ended = 0usize;
    let mut on_timeline = |entries: Vec<TimelineEntry>| {
        let mut fired = 0;
        for t in &entries {
            if matches!(t.happening, Happening::Ended { .. }) {
                ended += 1;
            }
            if matches!(t.happening, Happening::Sent { .. }) {
                fired += 1;
            }
        }
        if fired > 0 {
            let mut o = out.lock();
            let _ = writeln!(o, "progress sent={fired} ended={ended}");
            let _ = o.flush();
        }
    };
    run_live(
        &mut rt,
        &clock,
        &mut sink,
        &rx,
        &stop,
        LoopConfig::default(),
        &mut on_timeline,
    )?;
    println!("done");
    Ok(())
}
