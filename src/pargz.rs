//! Gzip made and read on every core.
//!
//! Making: the data is cut into chunks of [`CHUNK`] bytes, and each chunk is compressed on
//! its own by a worker of a [`Pool`] into one gzip member (libdeflate, [`GZIP_LEVEL`]); the
//! members are written in order. A gzip file may hold any number of members, and gzip,
//! Python's `gzip` module (so duplicity) and every other reader read them as one stream.
//! Each member's header carries its own size in an extra field ([`SUBFIELD`]), so that a
//! reader can cut a file into members without inflating it and inflate them on every core
//! ([`Gunzip`]); other readers skip the field. A chunk that does not compress (random data,
//! media, files compressed already) is written as stored blocks after a cheap test, at the
//! cost of a CRC and a copy.
//!
//! Raw deflate streams (inside OpenPGP's compressed packets, which hold one deflate stream)
//! are made as pigz makes them: each chunk is deflated by zlib primed with the last 32 KiB
//! of the chunk before it and ends on a byte boundary, so that the pieces join.

use flate2::bufread::MultiGzDecoder;
use flate2::{Compress, Compression, FlushCompress, Status};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::io::{self, BufRead, Cursor, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

/// Plain bytes per chunk.
pub const CHUNK: usize = 1 << 20;
/// The deflate window: how much of the chunk before primes the next one.
const WINDOW: usize = 32 * 1024;
/// zlib's level for raw deflate streams (OpenPGP's compressed packets). rpgp's is 6;
/// zlib-rs at 5 takes about 13 % less time on text and database pages for 0.1-0.3 % more
/// bytes.
pub const LEVEL: u32 = 5;
/// libdeflate's level for the gzip members of volumes and signature files. duplicity's
/// gzip level is 6 (Python's `GzipFile`); libdeflate at 5, each 1 MiB chunk on its own,
/// stores within 0.5 % of `gzip -6` on source text and 0.5 % less on the benchmark's tree,
/// in 30 % less CPU time than zlib-rs at 5 (see the README's Compression section).
pub const GZIP_LEVEL: i32 = 5;
/// The extra subfield in the header of every gzip member ferrodup writes: its two
/// identifier bytes, then two bytes of length (4) and the member's whole size in bytes
/// (header to trailer), little-endian.
pub const SUBFIELD: [u8; 2] = *b"FD";
/// A member's header with the extra field: 10 bytes, the extra field's length, the
/// subfield.
const MEMBER_HEAD: usize = 10 + 2 + 8;
/// The most plain bytes a member may hold: more is damage (ours hold [`CHUNK`]).
const MAX_MEMBER_PLAIN: usize = 16 * CHUNK;

/// A task for a [`Pool`] worker.
pub type Task<'a> = Box<dyn FnOnce() + Send + 'a>;

/// Worker threads that take tasks in the order they are given. [`Pool::run`] waits while
/// the queue is full, so the work in flight stays bounded. The workers end when every
/// handle is dropped and the queue is empty.
#[derive(Clone)]
pub struct Pool<'a> {
    tx: mpsc::SyncSender<Task<'a>>,
}

impl<'a> Pool<'a> {
    /// Starts `workers` threads in `scope`; at most twice as many tasks wait in the queue.
    pub fn start<'s, 'e>(scope: &'s thread::Scope<'s, 'e>, workers: usize) -> Pool<'a>
    where
        'a: 's,
    {
        let workers = workers.max(1);
        let (tx, rx) = mpsc::sync_channel::<Task<'a>>(workers * 2);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..workers {
            let rx = rx.clone();
            scope.spawn(move || loop {
                let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                match next {
                    Ok(task) => task(),
                    Err(_) => return,
                }
            });
        }
        Pool { tx }
    }

    /// Queues `task`; fails only if every worker has died.
    pub fn run(&self, task: Task<'a>) -> io::Result<()> {
        self.tx
            .send(task)
            .map_err(|_| io::Error::other("the compression workers stopped"))
    }
}

/// The threads to use: one per core.
pub fn workers() -> usize {
    thread::available_parallelism().map_or(2, |n| n.get())
}

/// Plain and stored bytes seen so far, across chunks and files: the ratio lets a volume be
/// cut near its stored size before that size is known.
#[derive(Default)]
pub struct Ratio {
    plain: AtomicU64,
    stored: AtomicU64,
}

impl Ratio {
    pub fn add(&self, plain: u64, stored: u64) {
        self.plain.fetch_add(plain, Ordering::Relaxed);
        self.stored.fetch_add(stored, Ordering::Relaxed);
    }

    /// The stored size that `plain` bytes are expected to take.
    pub fn estimate(&self, plain: u64) -> u64 {
        let p = self.plain.load(Ordering::Relaxed);
        let s = self.stored.load(Ordering::Relaxed);
        if p == 0 {
            plain
        } else {
            (plain as u128 * s as u128 / p as u128) as u64
        }
    }
}

/// `plain` as one gzip member: the header (no file name, the modification time, operating
/// system "unknown", and the [`SUBFIELD`] with the member's size), the deflate data
/// (stored blocks if it does not compress), the CRC-32 and the size.
fn member(plain: &[u8], mtime: u32) -> Vec<u8> {
    thread_local! {
        static DEFLATE: RefCell<Option<libdeflater::Compressor>> = const { RefCell::new(None) };
    }
    let t = mtime.to_le_bytes();
    let mut out = Vec::new();
    out.extend_from_slice(&[0x1f, 0x8b, 8, 4, t[0], t[1], t[2], t[3], 0, 255]);
    out.extend_from_slice(&8u16.to_le_bytes());
    out.extend_from_slice(&[SUBFIELD[0], SUBFIELD[1], 4, 0, 0, 0, 0, 0]);
    let stored_len = plain.len() + plain.len() / 65535 * 5 + 5;
    let mut deflated = false;
    if compressible(plain) {
        DEFLATE.with_borrow_mut(|c| {
            let c = c.get_or_insert_with(|| {
                let level = libdeflater::CompressionLvl::new(GZIP_LEVEL)
                    .unwrap_or_else(|_| libdeflater::CompressionLvl::default());
                libdeflater::Compressor::new(level)
            });
            out.resize(MEMBER_HEAD + c.deflate_compress_bound(plain.len()), 0);
            if let Ok(n) = c.deflate_compress(plain, &mut out[MEMBER_HEAD..]) {
                if n < stored_len {
                    out.truncate(MEMBER_HEAD + n);
                    deflated = true;
                }
            }
        });
    }
    if !deflated {
        out.truncate(MEMBER_HEAD);
        out.extend_from_slice(&stored(plain, true));
    }
    out.extend_from_slice(&libdeflater::crc32(plain).to_le_bytes());
    out.extend_from_slice(&(plain.len() as u32).to_le_bytes());
    let size = out.len() as u32;
    out[16..20].copy_from_slice(&size.to_le_bytes());
    out
}

/// True unless the chunk looks incompressible: bytes spread nearly evenly over all 256
/// values (more than 7.9 bits of entropy per byte in samples of the chunk), and a fast
/// deflate of four samples saving under 2 %.
pub fn compressible(plain: &[u8]) -> bool {
    if plain.len() < 16 * 1024 {
        return true;
    }
    // The entropy of 16 pieces of 4 KiB spread over the chunk: the estimate of 64 Ki
    // bytes is within 0.01 bit of the whole chunk's for random data.
    let piece = 4096;
    let mut hist = [0u32; 256];
    let mut n = 0usize;
    for i in 0..16 {
        let at = (plain.len() - piece) * i / 15;
        for &b in &plain[at..at + piece] {
            hist[b as usize] += 1;
        }
        n += piece;
    }
    let n = n as f64;
    let bits: f64 = hist
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum();
    if bits < 7.9 {
        return true;
    }
    let sample = 16 * 1024;
    let mut out = Vec::with_capacity(sample + 1024);
    (0..4).any(|i| {
        let at = (plain.len() - sample) * i / 3;
        let s = &plain[at..at + sample];
        let mut c = Compress::new(Compression::fast(), false);
        out.clear();
        matches!(
            c.compress_vec(s, &mut out, FlushCompress::Finish),
            Ok(Status::StreamEnd)
        ) && out.len() < s.len() * 98 / 100
    })
}

/// `plain` as stored deflate blocks (at most 65,535 bytes each), starting and ending on a
/// byte boundary; the last block ends the stream if `last`.
fn stored(plain: &[u8], last: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(plain.len() + plain.len() / 65535 * 5 + 5);
    let mut blocks = plain.chunks(65535).peekable();
    if blocks.peek().is_none() {
        out.extend_from_slice(&[last as u8, 0, 0, 0xff, 0xff]);
    }
    while let Some(b) = blocks.next() {
        let fin = last && blocks.peek().is_none();
        let len = b.len() as u16;
        out.push(fin as u8);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(b);
    }
    out
}

/// One chunk as raw deflate data primed with `dict`, ending on a byte boundary (and ending
/// the stream if `last`); stored blocks when it does not compress.
pub fn deflate_chunk(plain: &[u8], dict: &[u8], last: bool, level: u32) -> io::Result<Vec<u8>> {
    if !compressible(plain) {
        return Ok(stored(plain, last));
    }
    let mut c = Compress::new(Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    let mut out = Vec::with_capacity(plain.len() / 2 + 1024);
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity());
        }
        let taken = c.total_in() as usize;
        let status = c
            .compress_vec(&plain[taken..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = c.total_in() as usize == plain.len();
        let done = match status {
            Status::StreamEnd => true,
            // A sync flush is complete once a call leaves output space unused.
            _ => !last && all_in && out.len() < out.capacity(),
        };
        if done {
            break;
        }
    }
    if out.len() > plain.len() + plain.len() / 65535 * 5 + 5 {
        return Ok(stored(plain, last));
    }
    Ok(out)
}

/// What ends a stream: called once, with the output (after the last piece) or the first
/// error.
pub type OnEnd<'a, W> = Box<dyn FnOnce(io::Result<W>) + Send + 'a>;

/// A compressed chunk waiting for its turn to be written.
struct Piece {
    data: io::Result<Vec<u8>>,
    /// Plain bytes it holds.
    len: u64,
    last: bool,
}

struct State<'a, W> {
    out: Option<W>,
    next: u64,
    pending: BTreeMap<u64, Piece>,
    error: Option<io::Error>,
    on_end: Option<OnEnd<'a, W>>,
    /// No more pieces count: the stream ended, failed or was abandoned.
    over: bool,
}

/// The ordered side of a stream: pieces arrive in any order from the workers and are
/// written in chunk order by whichever worker completes the run.
struct Stream<'a, W> {
    state: Mutex<State<'a, W>>,
    ratio: Option<Arc<Ratio>>,
}

impl<'a, W: Write> Stream<'a, W> {
    fn deliver(&self, seq: u64, piece: Piece) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.over {
            return;
        }
        st.pending.insert(seq, piece);
        loop {
            let next = st.next;
            let Some(p) = st.pending.remove(&next) else {
                break;
            };
            st.next += 1;
            let written = p.data.and_then(|d| {
                let out = st.out.as_mut().expect("open until the stream is over");
                out.write_all(&d)?;
                Ok(d.len())
            });
            match written {
                Ok(n) => {
                    if let Some(r) = &self.ratio {
                        r.add(p.len, n as u64);
                    }
                    if p.last {
                        let out = st.out.take().expect("open");
                        st.over = true;
                        st.pending.clear();
                        if let Some(end) = st.on_end.take() {
                            drop(st);
                            end(Ok(out));
                        }
                        return;
                    }
                }
                Err(e) => {
                    self.fail(st, e);
                    return;
                }
            }
        }
    }

    fn fail(&self, mut st: std::sync::MutexGuard<'_, State<'a, W>>, e: io::Error) {
        st.over = true;
        st.pending.clear();
        st.out = None;
        match st.on_end.take() {
            Some(end) => {
                drop(st);
                end(Err(e));
            }
            None => st.error = Some(e),
        }
    }
}

/// The producer's side of one gzip stream (or raw deflate stream): chunks go to the pool
/// as they are given.
pub struct ParGz<'a, W> {
    pool: Pool<'a>,
    stream: Arc<Stream<'a, W>>,
    seq: u64,
    /// The modification time of gzip members; `None` for a raw deflate stream.
    mtime: Option<u32>,
    /// The end of the data so far, which primes a raw stream's next chunk.
    window: Vec<u8>,
    finished: bool,
}

impl<'a, W: Write + Send + 'a> ParGz<'a, W> {
    /// Starts a gzip stream into `out`, one member per chunk, compressed by `pool`;
    /// `ratio`, if given, learns the plain and stored size of every chunk.
    pub fn new(pool: Pool<'a>, out: W, mtime: u32, ratio: Option<Arc<Ratio>>) -> Self {
        Self::start(pool, out, ratio, Some(mtime))
    }

    /// Starts a raw deflate stream (no header, no trailer: the caller frames it, as an
    /// OpenPGP compressed packet does) into `out`, compressed by `pool`.
    pub fn raw(pool: Pool<'a>, out: W, ratio: Option<Arc<Ratio>>) -> Self {
        Self::start(pool, out, ratio, None)
    }

    fn start(pool: Pool<'a>, out: W, ratio: Option<Arc<Ratio>>, mtime: Option<u32>) -> Self {
        ParGz {
            pool,
            stream: Arc::new(Stream {
                state: Mutex::new(State {
                    out: Some(out),
                    next: 0,
                    pending: BTreeMap::new(),
                    error: None,
                    on_end: None,
                    over: false,
                }),
                ratio,
            }),
            seq: 0,
            mtime,
            window: Vec::new(),
            finished: false,
        }
    }

    /// The error a worker met, if any: the stream is over.
    fn failed(&self) -> Option<io::Error> {
        let mut st = self.stream.state.lock().unwrap_or_else(|e| e.into_inner());
        st.error.take()
    }

    /// The last [`WINDOW`] bytes of the raw stream's data before `chunk`, which primes it;
    /// keeps those after it for the next.
    fn prime(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut next_window = Vec::with_capacity(WINDOW);
        if chunk.len() < WINDOW {
            let keep = (WINDOW - chunk.len()).min(self.window.len());
            next_window.extend_from_slice(&self.window[self.window.len() - keep..]);
        }
        next_window.extend_from_slice(&chunk[chunk.len().saturating_sub(WINDOW)..]);
        std::mem::replace(&mut self.window, next_window)
    }

    fn dispatch(&mut self, chunk: Vec<u8>, last: bool) -> io::Result<()> {
        if let Some(e) = self.failed() {
            return Err(e);
        }
        let mtime = self.mtime;
        let dict = match mtime {
            Some(_) => Vec::new(),
            None => self.prime(&chunk),
        };
        let stream = self.stream.clone();
        let seq = self.seq;
        self.seq += 1;
        self.pool.run(Box::new(move || {
            let data = match mtime {
                Some(t) => Ok(member(&chunk, t)),
                None => deflate_chunk(&chunk, &dict, last, LEVEL),
            };
            let len = chunk.len() as u64;
            drop(chunk);
            stream.deliver(seq, Piece { data, len, last });
        }))
    }

    /// Hands on the next chunk of plain data (any size; [`CHUNK`] is best).
    pub fn push(&mut self, chunk: Vec<u8>) -> io::Result<()> {
        self.dispatch(chunk, false)
    }

    /// Hands on the last chunk (may be empty); `on_end` gets the output once every chunk is
    /// written, or the first error, on a worker thread.
    pub fn finish(mut self, last: Vec<u8>, on_end: OnEnd<'a, W>) -> io::Result<()> {
        self.finished = true;
        {
            let mut st = self.stream.state.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(e) = st.error.take() {
                return Err(e);
            }
            st.on_end = Some(on_end);
        }
        let r = self.dispatch(last, true);
        if r.is_err() {
            // The queue is gone: nothing will end the stream, and the output is closed.
            let mut st = self.stream.state.lock().unwrap_or_else(|e| e.into_inner());
            st.on_end = None;
            st.over = true;
            st.out = None;
        }
        r
    }
}

impl<W> Drop for ParGz<'_, W> {
    /// A stream dropped unfinished is abandoned: later pieces are ignored and the output
    /// is closed.
    fn drop(&mut self) {
        if !self.finished {
            let mut st = self.stream.state.lock().unwrap_or_else(|e| e.into_inner());
            st.over = true;
            st.pending.clear();
            st.out = None;
        }
    }
}

/// Gzips everything `input` yields into `out` on every core; returns `out` after the
/// trailer. Errors reading `input` are returned as they are.
pub fn compress<W: Write + Send>(input: &mut dyn Read, out: W, mtime: u32) -> io::Result<W> {
    thread::scope(|scope| {
        let pool = Pool::start(scope, workers());
        let mut gz = ParGz::new(pool, out, mtime, None);
        let (tx, rx) = mpsc::channel();
        let mut chunk = read_chunk(input)?;
        loop {
            let next = if chunk.len() < CHUNK {
                Vec::new()
            } else {
                read_chunk(input)?
            };
            if next.is_empty() {
                gz.finish(
                    chunk,
                    Box::new(move |r| {
                        let _ = tx.send(r);
                    }),
                )?;
                break;
            }
            gz.push(std::mem::replace(&mut chunk, next))?;
        }
        rx.recv()
            .unwrap_or_else(|_| Err(io::Error::other("the compression workers stopped")))
    })
}

/// Up to [`CHUNK`] bytes of `input` (fewer only at its end).
fn read_chunk(input: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(CHUNK);
    input.take(CHUNK as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Members decompressed ahead of the reader, per worker: enough to keep every core busy
/// while the reader copies out one member, bounded (about 2 MiB per member in flight).
const AHEAD_PER_WORKER: usize = 2;

/// A member to inflate and where its plain bytes go.
type Job = (Vec<u8>, mpsc::SyncSender<io::Result<Vec<u8>>>);

/// Reads a gzip file. Members that carry their size ([`SUBFIELD`], as ferrodup writes them)
/// are cut apart without inflating and inflated ahead on every core, in a bounded window,
/// and given back in order. From the first member without it (a file gzip, Python or
/// duplicity made, or damage), the rest is read by one streaming decoder.
pub struct Gunzip<R: BufRead> {
    /// Input not yet cut into members; `None` once it ended or went to `serial`.
    input: Option<R>,
    serial: Option<MultiGzDecoder<io::Chain<Cursor<Vec<u8>>, R>>>,
    jobs: Option<mpsc::Sender<Job>>,
    ahead: VecDeque<mpsc::Receiver<io::Result<Vec<u8>>>>,
    plain: Vec<u8>,
    at: usize,
    workers: usize,
}

/// What comes next in the input.
enum Next {
    Member(Vec<u8>),
    /// A member without our subfield: the bytes of it read so far.
    Other(Vec<u8>),
    End,
}

impl<R: BufRead> Gunzip<R> {
    pub fn new(input: R) -> Self {
        Gunzip {
            input: Some(input),
            serial: None,
            jobs: None,
            ahead: VecDeque::new(),
            plain: Vec::new(),
            at: 0,
            workers: workers(),
        }
    }

    /// Reads the next member if it carries its size.
    fn next_member(input: &mut R) -> io::Result<Next> {
        let mut head = vec![0u8; MEMBER_HEAD];
        let n = crate::codec::read_full(input, &mut head[..12])?;
        if n == 0 {
            return Ok(Next::End);
        }
        if n < 12 || head[..3] != [0x1f, 0x8b, 8] || head[3] & 4 == 0 {
            head.truncate(n);
            return Ok(Next::Other(head));
        }
        let xlen = u16::from_le_bytes([head[10], head[11]]) as usize;
        head.resize(12 + xlen, 0);
        let got = crate::codec::read_full(input, &mut head[12..])?;
        head.truncate(12 + got);
        let size = (got == xlen).then(|| subfield_size(&head[12..])).flatten();
        let Some(size) = size else {
            return Ok(Next::Other(head));
        };
        let max = MAX_MEMBER_PLAIN + MAX_MEMBER_PLAIN / 65535 * 5 + 5 + head.len() + 8;
        if size < head.len() + 8 || size > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("corrupt gzip data: a member's header gives it {size} bytes"),
            ));
        }
        let mut member = head;
        let start = member.len();
        member.resize(size, 0);
        input.read_exact(&mut member[start..]).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(
                    e.kind(),
                    "truncated gzip data: the file ends inside a member",
                )
            } else {
                e
            }
        })?;
        Ok(Next::Member(member))
    }

    /// Starts the inflating workers.
    fn start_workers(&mut self) -> &mpsc::Sender<Job> {
        self.jobs.get_or_insert_with(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            let rx = Arc::new(Mutex::new(rx));
            for _ in 0..self.workers {
                let rx = rx.clone();
                thread::spawn(move || {
                    let mut d = libdeflater::Decompressor::new();
                    loop {
                        let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok((member, back)) = next else {
                            return;
                        };
                        let _ = back.send(inflate(&mut d, &member));
                    }
                });
            }
            tx
        })
    }

    /// Cuts members ahead until the window is full, the input ends or a member without our
    /// subfield starts the serial decoder.
    fn fill(&mut self) -> io::Result<()> {
        while self.ahead.len() < self.workers * AHEAD_PER_WORKER {
            let Some(input) = self.input.as_mut() else {
                return Ok(());
            };
            match Self::next_member(input)? {
                Next::Member(m) => {
                    let (tx, rx) = mpsc::sync_channel(1);
                    self.start_workers()
                        .send((m, tx))
                        .map_err(|_| io::Error::other("the gzip workers stopped"))?;
                    self.ahead.push_back(rx);
                }
                Next::Other(head) => {
                    let input = self.input.take().expect("checked above");
                    self.serial = Some(MultiGzDecoder::new(Cursor::new(head).chain(input)));
                }
                Next::End => self.input = None,
            }
        }
        Ok(())
    }
}

/// The member size in a gzip extra field, if it holds our subfield.
fn subfield_size(mut extra: &[u8]) -> Option<usize> {
    while extra.len() >= 4 {
        let len = u16::from_le_bytes([extra[2], extra[3]]) as usize;
        let body = extra.get(4..4 + len)?;
        if extra[..2] == SUBFIELD && len == 4 {
            return Some(u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize);
        }
        extra = &extra[4 + len..];
    }
    None
}

/// Inflates one whole member, checking its CRC-32 and size.
fn inflate(d: &mut libdeflater::Decompressor, member: &[u8]) -> io::Result<Vec<u8>> {
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("corrupt gzip data: {what}"),
        )
    };
    let t = &member[member.len() - 4..];
    let size = u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as usize;
    if size > MAX_MEMBER_PLAIN {
        return Err(bad("a member's trailer gives an impossible size"));
    }
    let mut plain = vec![0u8; size];
    match d.gzip_decompress(member, &mut plain) {
        Ok(n) if n == size => Ok(plain),
        Ok(_) => Err(bad("a member is shorter than its trailer says")),
        Err(_) => Err(bad("a member's deflate data or CRC-32 is wrong")),
    }
}

impl<R: BufRead> Read for Gunzip<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.at < self.plain.len() {
                let n = buf.len().min(self.plain.len() - self.at);
                buf[..n].copy_from_slice(&self.plain[self.at..self.at + n]);
                self.at += n;
                return Ok(n);
            }
            self.fill()?;
            match self.ahead.pop_front() {
                Some(rx) => {
                    self.plain = rx
                        .recv()
                        .unwrap_or_else(|_| Err(io::Error::other("the gzip workers stopped")))?;
                    self.at = 0;
                }
                None => {
                    return match self.serial.as_mut() {
                        Some(s) => s.read(buf),
                        None => Ok(0),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::MultiGzDecoder;
    use proptest::prelude::*;

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        MultiGzDecoder::new(data).read_to_end(&mut out).unwrap();
        out
    }

    /// Text, random bytes and runs, in chunk-sized and odd-sized pieces.
    fn mixed(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let run = (x % 300_000) as usize + 1;
            match x % 3 {
                0 => out.extend((0..run).map(|i| b"the quick brown fox jumps "[i % 26])),
                1 => {
                    let mut y = x;
                    out.extend((0..run).map(|_| {
                        y ^= y << 13;
                        y ^= y >> 7;
                        y ^= y << 17;
                        y as u8
                    }))
                }
                _ => out.extend(std::iter::repeat_n(x as u8, run)),
            }
        }
        out.truncate(len);
        out
    }

    /// The members of a gzip file, cut by the sizes in their headers.
    fn members(mut gz: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        while !gz.is_empty() {
            let xlen = u16::from_le_bytes([gz[10], gz[11]]) as usize;
            let size = subfield_size(&gz[12..12 + xlen]).expect("our subfield");
            out.push(&gz[..size]);
            gz = &gz[size..];
        }
        out
    }

    #[test]
    fn one_member_per_chunk_each_carrying_its_size_read_by_any_gzip_reader() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 12345] {
            let data = mixed(len, len as u64 + 7);
            let gz = compress(&mut &data[..], Vec::new(), 1_700_000_000).unwrap();
            assert_eq!(gunzip(&gz), data, "length {len}");
            let members = members(&gz);
            assert_eq!(members.len(), len.div_ceil(CHUNK).max(1), "length {len}");
            for (m, plain) in members.iter().zip(data.chunks(CHUNK)) {
                let mut one = Vec::new();
                flate2::read::GzDecoder::new(*m)
                    .read_to_end(&mut one)
                    .unwrap();
                assert!(one == plain, "length {len}");
                assert_eq!(m[..10], [0x1f, 0x8b, 8, 4, 0, 0xf1, 0x53, 0x65, 0, 255]);
            }
            let mut back = Vec::new();
            Gunzip::new(&gz[..]).read_to_end(&mut back).unwrap();
            assert!(back == data, "length {len}, read on every core");
        }
    }

    #[test]
    fn files_other_tools_made_are_read_and_may_follow_ours() {
        let data = mixed(2 * CHUNK + 99, 5);
        let mut theirs = flate2::write::GzEncoder::new(Vec::new(), Compression::new(6));
        theirs.write_all(&data).unwrap();
        let theirs = theirs.finish().unwrap();
        let mut back = Vec::new();
        Gunzip::new(&theirs[..]).read_to_end(&mut back).unwrap();
        assert!(back == data);
        let mut both = compress(&mut &data[..], Vec::new(), 0).unwrap();
        both.extend_from_slice(&theirs);
        back.clear();
        Gunzip::new(&both[..]).read_to_end(&mut back).unwrap();
        assert!(back[..data.len()] == data[..] && back[data.len()..] == data[..]);
    }

    #[test]
    fn damaged_or_truncated_members_are_errors() {
        let data = mixed(3 * CHUNK, 9);
        let gz = compress(&mut &data[..], Vec::new(), 0).unwrap();
        let second = members(&gz)[0].len();
        let read = |gz: &[u8]| {
            let mut back = Vec::new();
            Gunzip::new(gz).read_to_end(&mut back).map(|_| back)
        };
        // A changed byte in the second member's data: its CRC-32 or deflate data fails.
        let mut bad = gz.clone();
        bad[second + MEMBER_HEAD + 1000] ^= 0x55;
        let e = read(&bad).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        // A changed size in a member's header.
        let mut bad = gz.clone();
        bad[second + 19] = 0x7f;
        let e = read(&bad).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        // The file cut inside a member, and inside a header.
        for cut in [gz.len() - 5, second + 7] {
            let e = read(&gz[..cut]).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}: {e}");
        }
    }

    #[test]
    fn random_chunks_are_stored_and_text_is_compressed_as_one_stream_would_be() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let random: Vec<u8> = (0..4 * CHUNK)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let gz = compress(&mut &random[..], Vec::new(), 0).unwrap();
        assert!(
            gz.len() < random.len() + random.len() / 1000,
            "{}",
            gz.len()
        );
        assert_eq!(gunzip(&gz), random);
        let text: Vec<u8> = (0..200_000)
            .flat_map(|i| format!("line {i}: some words that repeat, {}\n", i % 977).into_bytes())
            .collect();
        let par = compress(&mut &text[..], Vec::new(), 0).unwrap();
        let mut serial = flate2::write::GzEncoder::new(Vec::new(), Compression::new(LEVEL));
        serial.write_all(&text).unwrap();
        let serial = serial.finish().unwrap();
        assert!(
            par.len() <= serial.len() + serial.len() / 100,
            "parallel {} vs serial {}",
            par.len(),
            serial.len()
        );
    }

    #[test]
    fn a_failing_output_ends_the_stream_with_its_error() {
        #[derive(Debug)]
        struct Full(usize);
        impl Write for Full {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                if self.0 < b.len() {
                    return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
                }
                self.0 -= b.len();
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let data = mixed(5 * CHUNK, 3);
        let e = compress(&mut &data[..], Full(CHUNK), 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
    }

    #[test]
    fn a_raw_stream_is_one_deflate_stream_without_header_or_trailer() {
        let data = mixed(3 * CHUNK + 5, 11);
        let raw = thread::scope(|scope| {
            let pool = Pool::start(scope, 2);
            let mut gz = ParGz::raw(pool, Vec::new(), None);
            for c in data.chunks(CHUNK).take(3) {
                gz.push(c.to_vec()).unwrap();
            }
            let (tx, rx) = mpsc::channel();
            gz.finish(
                data[3 * CHUNK..].to_vec(),
                Box::new(move |r| tx.send(r).unwrap()),
            )
            .unwrap();
            rx.recv().unwrap().unwrap()
        });
        let mut back = Vec::new();
        let mut d = flate2::read::DeflateDecoder::new(&raw[..]);
        d.read_to_end(&mut back).unwrap();
        assert!(back == data);
        // The stream ends exactly at the end of the output.
        assert_eq!(d.total_in(), raw.len() as u64);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn any_data_round_trips(len in 0usize..3 * CHUNK, seed in any::<u64>()) {
            let data = mixed(len, seed);
            let gz = compress(&mut &data[..], Vec::new(), 0).unwrap();
            let mut back = Vec::new();
            Gunzip::new(&gz[..]).read_to_end(&mut back).unwrap();
            prop_assert_eq!(gunzip(&gz), data.clone());
            prop_assert_eq!(back, data);
        }
    }
}
