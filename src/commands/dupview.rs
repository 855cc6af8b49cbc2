//! duplicity's own view of a target, for the reports scripts parse: its grouping of the
//! listing into sets and chains, its matching of the latest chain with a signature chain,
//! and its warnings. It differs from [`crate::collection::Collection`] (what restores use)
//! in edge cases: a set without a manifest stays in its chain (and is also counted as
//! incomplete), and the latest chain counts only if its end matches a signature chain.

use crate::format::naming::{Kind, Prefixes, SetTimes};
use crate::format::time::pretty;

/// The report's last line when there are no stray sets.
pub const NOTHING_STRAY: &str = "No orphaned or incomplete backup sets found.";

/// One backup set as duplicity groups it.
#[derive(Clone, Debug)]
pub struct Set {
    pub times: SetTimes,
    /// The manifest (a partial one from the archive dir counts).
    pub manifest: Option<String>,
    /// Volume files in listing order, first of each number.
    pub volumes: Vec<(u32, String)>,
}

impl Set {
    /// The time duplicity shows: a full set's time, an incremental's end.
    pub fn time(&self) -> i64 {
        self.times.end()
    }

    fn start(&self) -> i64 {
        self.times.start()
    }

    /// `[manifest, volume, ...]`, as duplicity names a set in warnings.
    fn listing(&self) -> String {
        let names: Vec<&str> = self
            .manifest
            .iter()
            .map(String::as_str)
            .chain(self.volumes.iter().map(|(_, n)| n.as_str()))
            .collect();
        format!("[{}]", names.join(", "))
    }
}

/// A full set and the incrementals duplicity attached to it.
#[derive(Clone, Debug)]
pub struct Chain {
    pub full: Set,
    pub incs: Vec<Set>,
    /// The end of the last set added; duplicity keeps it when it drops that set.
    end: i64,
}

impl Chain {
    pub fn start(&self) -> i64 {
        self.full.time()
    }

    pub fn end(&self) -> i64 {
        self.end
    }

    /// The full set, then the incrementals, oldest first.
    pub fn sets(&self) -> Vec<&Set> {
        std::iter::once(&self.full)
            .chain(self.incs.iter())
            .collect()
    }

    /// duplicity's `add_inc`: appends `s` if it starts where the chain ends, or replaces
    /// the last incremental by a longer one from the same start.
    fn add_inc(&mut self, s: &Set) -> bool {
        if self.end == s.start() {
            self.incs.push(s.clone());
        } else {
            match self.incs.last_mut() {
                Some(last) if last.start() == s.start() && s.time() > last.time() => {
                    *last = s.clone()
                }
                _ => return false,
            }
        }
        self.end = s.time();
        true
    }

    /// The chain as duplicity prints it in collection-status.
    fn text(&self) -> Vec<String> {
        let row = |a: &str, b: &str, c: &str| format!("{a:>20}   {b:>30}   {c:>15}");
        let sets = self.sets();
        let mut l = vec![
            "-------------------------".to_string(),
            format!("Chain start time: {}", pretty(self.start())),
            format!("Chain end time: {}", pretty(self.end())),
            format!("Number of contained backup sets: {}", sets.len()),
            format!(
                "Total number of contained volumes: {}",
                sets.iter().map(|s| s.volumes.len()).sum::<usize>()
            ),
            row("Type of backup set:", "Time:", "Num volumes:"),
        ];
        for s in sets {
            l.push(row(
                set_kind(s),
                &pretty(s.time()),
                &s.volumes.len().to_string(),
            ));
        }
        l.push("-------------------------".to_string());
        l
    }
}

/// `Full` or `Incremental`.
pub fn set_kind(s: &Set) -> &'static str {
    if s.times.is_full() {
        "Full"
    } else {
        "Incremental"
    }
}

/// What duplicity makes of a target's listing and the archive dir's.
#[derive(Debug, Default)]
pub struct View {
    /// Warnings, in the order duplicity logs them (each may span lines).
    pub warnings: Vec<String>,
    /// Every chain, by end time (the matched one included).
    pub chains: Vec<Chain>,
    /// Index in `chains` of the latest chain, when a signature chain matches it.
    pub matched: Option<usize>,
    pub orphaned: Vec<Set>,
    pub incomplete: Vec<Set>,
}

impl View {
    /// Groups `remote` (the target's names) and `local` (the archive dir's) as duplicity
    /// 3.2.1 does (`CollectionsStatus.set_values`).
    pub fn new(prefixes: &Prefixes, remote: &[String], local: &[String]) -> View {
        let mut view = View::default();
        // Backup sets: the archive dir's partial files, then the target's files.
        let partials = local
            .iter()
            .filter(|n| prefixes.parse(n).is_some_and(|p| p.partial));
        let mut sets: Vec<Set> = Vec::new();
        for name in partials.chain(remote.iter()) {
            let Some(p) = prefixes.parse(name) else {
                continue;
            };
            if p.kind == Kind::Signature {
                continue;
            }
            let i = match sets.iter().position(|s| s.times == p.set) {
                Some(i) => i,
                None => {
                    sets.push(Set {
                        times: p.set,
                        manifest: None,
                        volumes: Vec::new(),
                    });
                    sets.len() - 1
                }
            };
            let set = &mut sets[i];
            match p.kind {
                Kind::Manifest => set.manifest = Some(name.clone()),
                Kind::Volume(n) if !set.volumes.iter().any(|(k, _)| *k == n) => {
                    set.volumes.push((n, name.clone()))
                }
                _ => {}
            }
        }
        sets.sort_by_key(Set::time);
        view.incomplete = sets
            .iter()
            .filter(|s| s.manifest.is_none())
            .cloned()
            .collect();
        for s in sets {
            if s.times.is_full() {
                view.chains.push(Chain {
                    end: s.time(),
                    full: s,
                    incs: Vec::new(),
                });
            } else if !view.chains.iter_mut().any(|c| c.add_inc(&s)) {
                view.orphaned.push(s);
            }
        }
        view.chains.sort_by_key(Chain::end);

        // Signature chains, in the archive dir and at the target.
        let (local_ends, local_orphans) = sig_chains(prefixes, local);
        let (remote_ends, remote_orphans) = sig_chains(prefixes, remote);
        let mut sig_ends: Vec<i64> = local_ends.into_iter().chain(remote_ends).collect();
        sig_ends.sort();
        if let Some(latest) = view.chains.last_mut() {
            for &end in sig_ends.iter().rev() {
                if end != latest.end() {
                    let n = latest.incs.len();
                    if n < 2 || latest.incs[n - 2].time() != end {
                        continue;
                    }
                    view.warnings.push(
                        "WARNING. discarding last backup set, because of missing signature file."
                            .to_string(),
                    );
                    view.incomplete.extend(latest.incs.pop());
                }
                view.matched = Some(view.chains.len() - 1);
                break;
            }
        }
        for (place, orphans) in [("local", local_orphans), ("remote", remote_orphans)] {
            if !orphans.is_empty() {
                view.warnings.push(format!(
                    "WARNING. found the following {place} orphaned signature file(s):\n{}",
                    orphans.join("\n")
                ));
            }
        }
        if !sig_ends.is_empty() && view.matched.is_none() {
            view.warnings
                .push("WARNING. found signatures but no corresponding backup files".to_string());
        }
        if !view.orphaned.is_empty() {
            let sets: Vec<String> = view.orphaned.iter().map(Set::listing).collect();
            view.warnings.push(format!(
                "WARNING. found the following orphaned backup file(s):\n{}",
                sets.join("\n")
            ));
        }
        view
    }

    /// The chain duplicity uses for reports: the latest, if a signature chain matches it.
    pub fn matched_chain(&self) -> Option<&Chain> {
        self.matched.map(|i| &self.chains[i])
    }

    /// The span of the chain duplicity reads for time `t` (the one covering it, else the
    /// latest before it, else the first), whose metadata its default partial sync fetches;
    /// `None` (fetch all) when no chain or two chains cover `t`.
    pub fn chain_span_at(&self, t: i64) -> Option<(i64, i64)> {
        let span = |c: &Chain| (c.start(), c.end());
        let covering: Vec<&Chain> = self
            .chains
            .iter()
            .filter(|c| c.start() <= t && t <= c.end())
            .collect();
        match covering.len() {
            1 => return Some(span(covering[0])),
            0 => {}
            _ => return None,
        }
        self.chains
            .iter()
            .rev()
            .find(|c| c.end() < t)
            .or(self.chains.first())
            .map(span)
    }

    /// The time of the latest full backup, if any.
    pub fn last_full(&self) -> Option<i64> {
        self.chains.iter().map(Chain::start).max()
    }

    /// `Last full backup date: ...`, as every duplicity command notes it.
    pub fn last_full_line(&self) -> String {
        match self.last_full() {
            Some(t) => format!("Last full backup date: {}", pretty(t)),
            None => "Last full backup date: none".to_string(),
        }
    }

    /// The collection-status report, line for line as duplicity prints it.
    pub fn report(&self, archive_dir: &str) -> Vec<String> {
        let others: Vec<&Chain> = self
            .chains
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != self.matched)
            .map(|(_, c)| c)
            .collect();
        let mut l = vec![
            "Collection Status".to_string(),
            "-----------------".to_string(),
            // duplicity names the class of its backend object, the same for every URL.
            "Connecting with backend: BackendWrapper".to_string(),
            format!("Archive dir: {archive_dir}"),
            String::new(),
            format!("Found {} secondary backup chain(s).", others.len()),
        ];
        for (i, c) in others.iter().enumerate() {
            l.push(format!("Secondary chain {} of {}:", i + 1, others.len()));
            l.extend(c.text());
            l.push(String::new());
        }
        match self.matched_chain() {
            Some(c) => {
                l.push(String::new());
                l.push("Found primary backup chain with matching signature chain:".to_string());
                l.extend(c.text());
            }
            None => l.push("No backup chains with active signatures found".to_string()),
        }
        if self.orphaned.is_empty() && self.incomplete.is_empty() {
            l.push(NOTHING_STRAY.to_string());
        } else {
            l.push(format!(
                "Also found {} backup set(s) not part of any chain,",
                self.orphaned.len()
            ));
            l.push(format!(
                "and {} incomplete backup set(s).",
                self.incomplete.len()
            ));
            l.push(
                "These may be deleted by running duplicity with the \"cleanup\" command."
                    .to_string(),
            );
        }
        l
    }
}

/// The end times of the signature chains among `names`, and the new-signature files that
/// extend none of them.
fn sig_chains(prefixes: &Prefixes, names: &[String]) -> (Vec<i64>, Vec<String>) {
    let mut ends = Vec::new();
    let mut news = Vec::new();
    for name in names {
        match prefixes.parse(name) {
            Some(p) if p.kind == Kind::Signature && p.set.is_full() => ends.push(p.set.end()),
            Some(p) if p.kind == Kind::Signature => news.push((p.set, name.clone())),
            _ => {}
        }
    }
    news.sort_by_key(|(t, _)| t.start());
    let mut orphans = Vec::new();
    for (t, name) in news {
        match ends.iter_mut().find(|e| **e == t.start()) {
            Some(e) => *e = t.end(),
            None => orphans.push(name),
        }
    }
    (ends, orphans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn inc_without_signature_is_discarded_with_a_warning() {
        let remote = names(&[
            "duplicity-full.20240101T120000Z.vol1.difftar.gz",
            "duplicity-full.20240101T120000Z.manifest",
            "duplicity-full-signatures.20240101T120000Z.sigtar.gz",
            "duplicity-inc.20240101T120000Z.to.20240102T120000Z.vol1.difftar.gz",
            "duplicity-inc.20240101T120000Z.to.20240102T120000Z.manifest",
            "duplicity-new-signatures.20240101T120000Z.to.20240102T120000Z.sigtar.gz",
            "duplicity-inc.20240102T120000Z.to.20240103T120000Z.vol1.difftar.gz",
        ]);
        let v = View::new(&Prefixes::default(), &remote, &[]);
        assert_eq!(v.incomplete.len(), 2, "{v:?}");
        assert_eq!(v.matched_chain().map(|c| c.incs.len()), Some(1));
        assert_eq!(
            v.warnings,
            ["WARNING. discarding last backup set, because of missing signature file."]
        );
    }

    #[test]
    fn orphaned_new_signature_is_named() {
        let remote = names(&[
            "duplicity-full.20240101T120000Z.vol1.difftar.gz",
            "duplicity-full.20240101T120000Z.manifest",
            "duplicity-full-signatures.20240101T120000Z.sigtar.gz",
            "duplicity-new-signatures.20240105T120000Z.to.20240106T120000Z.sigtar.gz",
        ]);
        let v = View::new(&Prefixes::default(), &remote, &[]);
        assert!(v.matched.is_some());
        assert_eq!(
            v.warnings,
            [
                "WARNING. found the following remote orphaned signature file(s):\n\
              duplicity-new-signatures.20240105T120000Z.to.20240106T120000Z.sigtar.gz"
            ]
        );
    }
}
