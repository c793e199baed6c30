//! Deploys and versions: a new program's journeys become versions, waiting contacts migrate by
//! step name, and versions are loaded on demand.

use super::*;

/// The deployed program and the versions contacts run.
#[derive(Default)]
pub(super) struct Deployed {
    pub(super) program: Arc<Program>,
    /// Every version loaded so far, by hash (new entries take the head, instances keep
    /// the version they entered).
    pub(super) versions: HashMap<String, Arc<JourneyIr>>,
    /// Per (version, step): whether an instance waiting there moves on without reading its
    /// contact's history (`waits_without_history`), worked out once.
    pub(super) history_free: HashMap<(String, StepId), bool>,
    /// The current version hash of each journey, for new entries.
    pub(super) heads: HashMap<String, String>,
    /// Experiments' winners known to this runtime, by `decision_key` (`experiments`).
    pub(super) decisions: HashMap<String, String>,
}

/// The store meta key of a journey's deployed versions.
fn versions_key(journey: &str) -> String {
    format!("versions:{journey}")
}

/// A journey's versions, oldest first, with when each was deployed here (versions deployed
/// before this list was kept are not in it).
pub fn deployed_versions(store: &Store, journey: &str) -> Result<Vec<(String, Millis)>> {
    Ok(store
        .meta(&versions_key(journey))?
        .and_then(|v| serde_json::from_slice(&v).ok())
        .unwrap_or_default())
}

impl Runtime {
    /// Loads a compiled program: a journey whose IR changed gets a new version for new
    /// entries; contacts in flight stay on theirs, unless it says `migrate by name`.
    /// A migration that would strand waiting contacts refuses the whole deploy.
    ///
    /// On a database several daemons share, a daemon moves only its own partitions'
    /// waiting contacts and segment members; the others do theirs when the program reaches
    /// them (`Runtime::follow_deploys`).
    pub fn deploy(&mut self, program: Program, now: Millis) -> Result<DeployReport> {
        let before_heads = self.deployed.heads.clone();
        let before = self.deployed.program.clone();
        let shared = self.store.is_shared();
        let mut report = DeployReport::default();
        let mut batch = WriteBatch::default();
        let mut migrations: Vec<(Arc<JourneyIr>, String, Arc<JourneyIr>)> = Vec::new();
        for (name, ir) in &program.journeys {
            let hash = ir.content_hash();
            self.deployed.heads.insert(name.clone(), hash.clone());
            let head = self.store.head(name)?;
            if head.as_deref() == Some(hash.as_str()) {
                // Deployed by another daemon: this one moves its own waiting contacts from
                // the version it ran.
                if let Some(was) = before_heads
                    .get(name)
                    .filter(|was| shared && ir.migrate_by_name && **was != hash)
                {
                    if let Some(old) = self.version(was)? {
                        migrations.push((old, hash.clone(), Arc::new(ir.clone())));
                    }
                }
                self.deployed
                    .versions
                    .entry(hash)
                    .or_insert_with(|| Arc::new(ir.clone()));
                continue;
            }
            if let (Some(old_hash), true) = (&head, ir.migrate_by_name) {
                if let Some(old) = self.version(old_hash)? {
                    let gaps = step::migration_gaps(&old, ir);
                    if !gaps.is_empty() {
                        return Err(RuntimeError::MigrationGap {
                            journey: name.clone(),
                            steps: gaps,
                        });
                    }
                    migrations.push((old, hash.clone(), Arc::new(ir.clone())));
                }
            }
            batch.put_version(&hash, ir);
            batch.set_head(name, &hash);
            // The journey's versions, with when each was deployed (the console lists them).
            let mut versions = deployed_versions(&self.store, name)?;
            versions.push((hash.clone(), now));
            batch.set_meta(
                &versions_key(name),
                &serde_json::to_vec(&versions).expect("versions serialize"),
            );
            for (i, e) in ir.entries.iter().enumerate() {
                if matches!(e, EntryIr::SegmentAt { .. } | EntryIr::SegmentEvery { .. }) {
                    let key = schedule_key(name, i);
                    if self.store.schedule_run(&key)?.is_none() {
                        batch.set_schedule_run(&key, now);
                    }
                }
            }
            self.deployed
                .versions
                .insert(hash.clone(), Arc::new(ir.clone()));
            report.changed.push(VersionChange {
                journey: name.clone(),
                from: head,
                to: hash,
            });
        }
        // Move waiting contacts of migrating journeys to the same-named step.
        for (old, new_hash, new) in migrations {
            for mut inst in self.store.active_of(&new.name)? {
                // Another daemon's contacts are moved by that daemon.
                if inst.version == new_hash || !self.store.works_on(&inst.contact) {
                    continue;
                }
                let from = inst.step.map(|s| old.step(s).name.clone());
                if let Some(name) = &from {
                    inst.step = new.step_by_name(name);
                }
                inst.version = new_hash.clone();
                batch.put_instance(&inst);
                report.migrated += 1;
            }
        }
        self.store.apply(batch)?;
        if self.durable {
            self.store.flush()?;
        }
        self.deployed.program = Arc::new(program);
        report.segments = self.refresh_segments(now, &before)?;
        if report.migrated > 0 {
            self.rebuild_figures()?;
        }
        Ok(report)
    }

    /// What `program` would change against what is deployed in the store (journeys whose
    /// version differs, segments whose definition does): a daemon starting on a database
    /// other daemons work on runs theirs rather than revert it with older files.
    pub fn changes_against_store(&self, program: &Program) -> Result<Vec<String>> {
        let mut changes = Vec::new();
        for (name, ir) in &program.journeys {
            if self.store.head(name)?.as_deref() != Some(ir.content_hash().as_str()) {
                changes.push(format!("journey '{name}'"));
            }
        }
        let stored: BTreeMap<String, String> = self.store.segment_defs()?.into_iter().collect();
        for name in program.segments.keys() {
            if stored.get(name) != Some(&segments::segment_fingerprint(program, name)) {
                changes.push(format!("segment '{name}'"));
            }
        }
        for name in stored.keys() {
            if !program.segments.contains_key(name) {
                changes.push(format!("segment '{name}' (removed)"));
            }
        }
        Ok(changes)
    }

    /// Whether nothing an instance can do next reads its contact's history: it waits where
    /// `JourneyIr::wakes_without_history` says so, remembered per version and step.
    pub(super) fn waits_without_history(&mut self, inst: &Instance) -> Result<bool> {
        let (Some(crate::engine::Parked::Waiting), Some(at)) = (inst.parked, inst.step) else {
            return Ok(false);
        };
        let memo = (inst.version.clone(), at);
        if let Some(known) = self.deployed.history_free.get(&memo) {
            return Ok(*known);
        }
        let free = self
            .version(&inst.version)?
            .is_some_and(|ir| ir.wakes_without_history(at));
        self.deployed.history_free.insert(memo, free);
        Ok(free)
    }

    pub(super) fn version(&mut self, hash: &str) -> Result<Option<Arc<JourneyIr>>> {
        if let Some(v) = self.deployed.versions.get(hash) {
            return Ok(Some(v.clone()));
        }
        match self.store.version(hash)? {
            Some(ir) => {
                let a = Arc::new(ir);
                self.deployed.versions.insert(hash.to_string(), a.clone());
                Ok(Some(a))
            }
            None => Ok(None),
        }
    }
}
