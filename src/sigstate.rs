//! The state recorded by a signature chain: the full signatures overlaid by each
//! new-signatures file, streamed in path order with constant memory.

use crate::error::{Error, Result};
use crate::format::entry::{self, DiffType};
use crate::format::manifest::cmp_index;
use crate::format::tar::{Header, TarReader};
use crate::fsmeta::FineStat;
use std::cmp::Ordering;
use std::io::Read;

/// One path's recorded state.
#[derive(Debug)]
pub struct SigEntry {
    pub index: Vec<u8>,
    pub difftype: DiffType,
    pub header: Header,
    /// The librsync signature of a regular file.
    pub signature: Option<Vec<u8>>,
    /// What ferrodup recorded beyond the tar header (absent in entries duplicity wrote).
    pub fine: Option<FineStat>,
}

struct Stream {
    name: String,
    tar: TarReader<Box<dyn Read + Send>>,
    head: Option<SigEntry>,
}

impl Stream {
    fn advance(&mut self) -> Result<()> {
        let corrupt = |e: std::io::Error| {
            Error::corrupt(format!(
                "signature file {} is corrupt or truncated ({e}); run cleanup, or delete it \
                 from the archive dir to fetch it again",
                self.name
            ))
        };
        self.head = None;
        let Some(h) = self.tar.next_header().map_err(corrupt)? else {
            self.tar.drain().map_err(corrupt)?;
            return Ok(());
        };
        let parsed = entry::parse(&h.name).ok_or_else(|| {
            Error::corrupt(format!(
                "signature file {} has an unexpected member {:?}",
                self.name,
                String::from_utf8_lossy(&h.name)
            ))
        })?;
        let fine = FineStat::from_records(self.tar.extra_records());
        let signature = if parsed.difftype == DiffType::Signature {
            // The header's size is untrusted: reserve at most 1 MiB ahead of the data.
            let mut data = Vec::with_capacity(h.size.min(1 << 20) as usize);
            self.tar.read_to_end(&mut data).map_err(corrupt)?;
            Some(data)
        } else {
            None
        };
        self.head = Some(SigEntry {
            index: parsed.index,
            difftype: parsed.difftype,
            header: h,
            signature,
            fine,
        });
        Ok(())
    }
}

/// Merges signature files (oldest first); for each path the newest entry wins, and deleted
/// paths are dropped.
pub struct SigOverlay {
    streams: Vec<Stream>,
    peeked: Option<SigEntry>,
}

impl SigOverlay {
    pub fn new(files: Vec<(String, Box<dyn Read + Send>)>) -> Result<Self> {
        let mut streams = Vec::new();
        for (name, r) in files {
            let mut s = Stream {
                name,
                tar: TarReader::new(r),
                head: None,
            };
            s.advance()?;
            streams.push(s);
        }
        Ok(SigOverlay {
            streams,
            peeked: None,
        })
    }

    /// An overlay of nothing (a full backup).
    pub fn empty() -> Self {
        SigOverlay {
            streams: Vec::new(),
            peeked: None,
        }
    }

    fn pull(&mut self) -> Result<Option<SigEntry>> {
        loop {
            let mut min: Option<&[u8]> = None;
            for s in &self.streams {
                if let Some(h) = &s.head {
                    if min.is_none_or(|m| cmp_index(&h.index, m) == Ordering::Less) {
                        min = Some(&h.index);
                    }
                }
            }
            let Some(min) = min.map(|m| m.to_vec()) else {
                return Ok(None);
            };
            let mut winner = None;
            for s in self.streams.iter_mut() {
                if s.head.as_ref().is_some_and(|h| h.index == min) {
                    winner = s.head.take();
                    s.advance()?;
                }
            }
            let w = winner.expect("some stream had the minimum");
            if w.difftype != DiffType::Deleted {
                return Ok(Some(w));
            }
        }
    }

    /// The next path's state without consuming it.
    pub fn peek(&mut self) -> Result<Option<&SigEntry>> {
        if self.peeked.is_none() {
            self.peeked = self.pull()?;
        }
        Ok(self.peeked.as_ref())
    }

    pub fn next_entry(&mut self) -> Result<Option<SigEntry>> {
        if let Some(e) = self.peeked.take() {
            return Ok(Some(e));
        }
        self.pull()
    }
}
