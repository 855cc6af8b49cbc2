//! Backup sets, chains and signature chains, found from a listing of file names.

use crate::format::manifest::{cmp_index, Manifest};
use crate::format::naming::{Kind, ParsedName, Prefixes, SetTimes};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

/// All the files of one backup run.
#[derive(Clone, Debug, Default)]
pub struct BackupSet {
    pub times: Option<SetTimes>,
    pub volumes: BTreeMap<u32, String>,
    pub manifest: Option<String>,
    pub partial_manifest: Option<String>,
    pub jsonstat: Option<String>,
    pub encrypted: bool,
    /// Two files claimed the same volume number.
    pub duplicate_volume: bool,
}

impl BackupSet {
    pub fn times(&self) -> SetTimes {
        self.times.expect("a set always has times")
    }

    /// Every file of the set.
    pub fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = self.volumes.values().cloned().collect();
        v.extend(self.manifest.iter().cloned());
        v.extend(self.partial_manifest.iter().cloned());
        v.extend(self.jsonstat.iter().cloned());
        v
    }

    pub fn is_complete(&self) -> bool {
        self.manifest.is_some()
    }

    /// What its manifest `m` says is missing from the set.
    pub fn damage(&self, m: &Manifest) -> Damage {
        let last = m.volumes.keys().next_back().copied().unwrap_or(0);
        Damage {
            missing: m
                .volumes
                .keys()
                .filter(|n| !self.volumes.contains_key(n))
                .copied()
                .collect(),
            unlisted: (1..last).filter(|n| !m.volumes.contains_key(n)).collect(),
            cut: m
                .volumes
                .values()
                .next_back()
                .and_then(|v| v.end_block.map(|b| (v.end.clone(), b))),
        }
    }
}

/// How a set's volumes fall short of its contents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Damage {
    /// Volumes its manifest lists that the target does not have.
    pub missing: Vec<u32>,
    /// Volume numbers below the manifest's last that it does not list.
    pub unlisted: Vec<u32>,
    /// Its last volume ends inside this file (path, block): later volumes are missing.
    pub cut: Option<(Vec<u8>, u64)>,
}

impl Damage {
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty() && self.unlisted.is_empty() && self.cut.is_none()
    }

    /// What is wrong, as a clause.
    pub fn describe(&self) -> String {
        let list = |v: &[u32]| {
            let n: Vec<String> = v.iter().map(u32::to_string).collect();
            match n.len() {
                1 => format!("volume {}", n[0]),
                _ => format!("volumes {}", n.join(", ")),
            }
        };
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!(
                "{} listed in its manifest {} missing from the target",
                list(&self.missing),
                if self.missing.len() == 1 { "is" } else { "are" }
            ));
        }
        if !self.unlisted.is_empty() {
            parts.push(format!(
                "its manifest does not list {}",
                list(&self.unlisted)
            ));
        }
        if let Some((path, block)) = &self.cut {
            parts.push(format!(
                "its last volume ends inside {} (block {block}), so the volumes after it are \
                 missing",
                String::from_utf8_lossy(path)
            ));
        }
        parts.join("; ")
    }

    /// True if restoring `path` (and what is below it) needs something that is missing.
    pub fn affects(&self, m: &Manifest, path: &[u8]) -> bool {
        if !self.unlisted.is_empty() {
            return true;
        }
        let lost = self
            .missing
            .iter()
            .any(|n| m.volumes.get(n).is_some_and(|v| v.contains(path)));
        let cut = self.cut.as_ref().is_some_and(|(p, _)| {
            cmp_index(path, p) != Ordering::Less
                || path.is_empty()
                || (p.starts_with(path) && p.get(path.len()) == Some(&b'/'))
        });
        lost || cut
    }

    /// Files whose data is cut by the missing volumes: restored, they would be short.
    pub fn cut_files(&self, m: &Manifest) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = self
            .missing
            .iter()
            .filter_map(|n| m.volumes.get(&n.checked_sub(1)?))
            .filter(|prev| prev.end_block.is_some())
            .map(|prev| prev.end.clone())
            .collect();
        v.extend(self.cut.iter().map(|(p, _)| p.clone()));
        v
    }
}

/// A full set and the incrementals that build on it.
#[derive(Clone, Debug)]
pub struct Chain {
    pub full: BackupSet,
    pub incs: Vec<BackupSet>,
}

impl Chain {
    pub fn start(&self) -> i64 {
        self.full.times().end()
    }
    pub fn end(&self) -> i64 {
        self.incs.last().unwrap_or(&self.full).times().end()
    }
    /// The full set and every incremental, oldest first.
    pub fn sets(&self) -> impl Iterator<Item = &BackupSet> {
        std::iter::once(&self.full).chain(self.incs.iter())
    }
    /// The sets needed to restore the state at time `t`: the full set (even when `t` is
    /// before it, as duplicity) and the incrementals up to `t`.
    pub fn sets_until(&self, t: i64) -> Vec<&BackupSet> {
        std::iter::once(&self.full)
            .chain(self.incs.iter().filter(|s| s.times().end() <= t))
            .collect()
    }
}

/// A full signature file and the new-signature files that extend it.
#[derive(Clone, Debug)]
pub struct SigChain {
    pub files: Vec<(SetTimes, String)>,
}

impl SigChain {
    pub fn start(&self) -> i64 {
        self.files[0].0.end()
    }
    pub fn end(&self) -> i64 {
        self.files.last().map_or(0, |f| f.0.end())
    }
    /// Signature files describing the state at time `t`: the full one (even when `t` is
    /// before it, as duplicity) and the incremental ones up to `t`.
    pub fn files_until(&self, t: i64) -> Vec<&str> {
        self.files
            .iter()
            .enumerate()
            .filter(|(i, (s, _))| *i == 0 || s.end() <= t)
            .map(|(_, (_, n))| n.as_str())
            .collect()
    }
}

/// What a listing holds.
#[derive(Clone, Debug, Default)]
pub struct Collection {
    pub chains: Vec<Chain>,
    pub orphaned_sets: Vec<BackupSet>,
    pub incomplete_sets: Vec<BackupSet>,
    pub sig_chains: Vec<SigChain>,
    pub orphaned_sigs: Vec<String>,
    pub partial_sigs: Vec<String>,
}

impl Collection {
    /// Groups the parsable names of a listing into sets and chains.
    pub fn from_names<S: AsRef<str>>(prefixes: &Prefixes, names: &[S]) -> Collection {
        let mut sets: BTreeMap<SetTimes, BackupSet> = BTreeMap::new();
        let mut sigs: Vec<(ParsedName, String)> = Vec::new();
        let mut col = Collection::default();
        for name in names {
            let name = name.as_ref();
            let Some(p) = prefixes.parse(name) else {
                continue;
            };
            if p.kind == Kind::Signature {
                if p.partial {
                    col.partial_sigs.push(name.to_string());
                } else {
                    sigs.push((p, name.to_string()));
                }
                continue;
            }
            let set = sets.entry(p.set).or_default();
            set.times = Some(p.set);
            set.encrypted |= p.encrypted;
            match p.kind {
                Kind::Volume(n) => {
                    if set.volumes.insert(n, name.to_string()).is_some() {
                        set.duplicate_volume = true;
                    }
                }
                Kind::Manifest if p.partial => set.partial_manifest = Some(name.to_string()),
                Kind::Manifest => set.manifest = Some(name.to_string()),
                Kind::Jsonstat => set.jsonstat = Some(name.to_string()),
                Kind::Signature => unreachable!("handled above"),
            }
        }
        let mut ordered: Vec<BackupSet> = sets.into_values().collect();
        ordered.sort_by_key(|s| (s.times().end(), !s.times().is_full()));
        for set in ordered {
            if !set.is_complete() {
                col.incomplete_sets.push(set);
                continue;
            }
            match set.times() {
                SetTimes::Full(_) => col.chains.push(Chain {
                    full: set,
                    incs: Vec::new(),
                }),
                SetTimes::Inc(start, end) => {
                    let target = col.chains.iter_mut().rev().find(|c| {
                        c.end() == start
                            || c.incs
                                .last()
                                .is_some_and(|l| matches!(l.times(), SetTimes::Inc(s, e) if s == start && e < end))
                    });
                    match target {
                        Some(chain) if chain.end() == start => chain.incs.push(set),
                        Some(chain) => {
                            let replaced = chain.incs.pop().expect("checked above");
                            col.orphaned_sets.push(replaced);
                            chain.incs.push(set);
                        }
                        None => col.orphaned_sets.push(set),
                    }
                }
            }
        }
        sigs.sort_by_key(|(p, _)| (p.set.end(), !p.set.is_full()));
        for (p, name) in sigs {
            match p.set {
                SetTimes::Full(_) => col.sig_chains.push(SigChain {
                    files: vec![(p.set, name)],
                }),
                SetTimes::Inc(start, _) => {
                    match col.sig_chains.iter_mut().rev().find(|c| c.end() == start) {
                        Some(chain) => chain.files.push((p.set, name)),
                        None => col.orphaned_sigs.push(name),
                    }
                }
            }
        }
        col
    }

    /// The chain holding the state at time `t`: the one whose span contains `t`, else the
    /// newest one ending before `t`, else (`t` is before every backup) the oldest one, as
    /// duplicity. `None` when there is no chain.
    pub fn chain_at(&self, t: i64) -> Option<&Chain> {
        if let Some(c) = self.chains.iter().find(|c| c.start() <= t && t <= c.end()) {
            return Some(c);
        }
        self.chains
            .iter()
            .rev()
            .find(|c| c.end() < t)
            .or(self.chains.first())
    }

    /// The signature chain matching the state at time `t`, chosen as [`Self::chain_at`].
    pub fn sig_chain_at(&self, t: i64) -> Option<&SigChain> {
        if let Some(c) = self
            .sig_chains
            .iter()
            .find(|c| c.start() <= t && t <= c.end())
        {
            return Some(c);
        }
        self.sig_chains
            .iter()
            .rev()
            .find(|c| c.end() < t)
            .or(self.sig_chains.first())
    }

    pub fn last_chain(&self) -> Option<&Chain> {
        self.chains.last()
    }

    /// The signature files among `names` whose set is in no chain: left by a run killed
    /// between storing its signature file and its manifest, or by a removal cut short. No
    /// restore or incremental can use them. Partial signature files are not included.
    pub fn stray_signatures<S: AsRef<str>>(&self, prefixes: &Prefixes, names: &[S]) -> Vec<String> {
        let in_chain: BTreeSet<SetTimes> = self
            .chains
            .iter()
            .flat_map(|c| c.sets())
            .map(|s| s.times())
            .collect();
        names
            .iter()
            .map(|n| n.as_ref())
            .filter(|n| {
                prefixes.parse(n).is_some_and(|p| {
                    p.kind == Kind::Signature && !p.partial && !in_chain.contains(&p.set)
                })
            })
            .map(str::to_string)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_and_orphans() {
        let p = Prefixes::default();
        let names = [
            "duplicity-full.20240101T120000Z.vol1.difftar.gz",
            "duplicity-full.20240101T120000Z.manifest",
            "duplicity-full-signatures.20240101T120000Z.sigtar.gz",
            "duplicity-inc.20240101T120000Z.to.20240102T120000Z.vol1.difftar.gz",
            "duplicity-inc.20240101T120000Z.to.20240102T120000Z.manifest",
            "duplicity-new-signatures.20240101T120000Z.to.20240102T120000Z.sigtar.gz",
            "duplicity-inc.20240105T120000Z.to.20240106T120000Z.manifest",
            "duplicity-inc.20240102T120000Z.to.20240103T120000Z.vol1.difftar.gz",
            "unrelated.txt",
        ];
        let c = Collection::from_names(&p, &names);
        assert_eq!(c.chains.len(), 1);
        assert_eq!(c.chains[0].incs.len(), 1);
        assert_eq!(c.orphaned_sets.len(), 1);
        assert_eq!(c.incomplete_sets.len(), 1);
        assert_eq!(c.sig_chains.len(), 1);
        assert_eq!(c.sig_chains[0].files.len(), 2);
        assert_eq!(c.chains[0].end(), 1704196800);
        assert_eq!(c.chain_at(1704110400 - 1).unwrap().start(), 1704110400);
        assert_eq!(c.chains[0].sets_until(1704110400).len(), 1);
        assert_eq!(c.chains[0].sets_until(0).len(), 1);
        assert_eq!(c.sig_chains[0].files_until(0).len(), 1);
        let stray = "duplicity-new-signatures.20240102T120000Z.to.20240103T120000Z.sigtar.gz";
        let mut with_stray = names.to_vec();
        with_stray.push(stray);
        assert_eq!(c.stray_signatures(&p, &with_stray), vec![stray.to_string()]);
    }

    #[test]
    fn damage_of_sets_cut_short() {
        let text = "Volume 1:\n    StartingPath   .  \n    EndingPath     big 15\n\
                    Volume 2:\n    StartingPath   big 16\n    EndingPath     big 30\n\
                    Volume 3:\n    StartingPath   big 31\n    EndingPath     z  \n";
        let m = Manifest::parse(text.as_bytes()).unwrap();
        let mut set = BackupSet::default();
        for n in 1..=3 {
            set.volumes.insert(n, format!("vol{n}"));
        }
        assert!(set.damage(&m).is_empty());
        set.volumes.remove(&2);
        let d = set.damage(&m);
        assert_eq!(d.missing, vec![2]);
        assert_eq!(d.cut_files(&m), vec![b"big".to_vec()]);
        assert!(d.affects(&m, b"") && d.affects(&m, b"big") && !d.affects(&m, b"a"));
        assert!(d
            .describe()
            .contains("volume 2 listed in its manifest is missing"));

        let cut = Manifest::parse(text.split("Volume 3").next().unwrap().as_bytes()).unwrap();
        set.volumes.insert(2, "vol2".into());
        let d = set.damage(&cut);
        assert_eq!(d.cut, Some((b"big".to_vec(), 30)));
        assert!(d.affects(&cut, b"z") && d.affects(&cut, b"") && !d.affects(&cut, b"a"));
        assert!(d.describe().contains("ends inside big (block 30)"));
    }
}
