//! librsync signatures (MD4, 8-byte strong sums, rollsum weak sums: what duplicity writes),
//! computed push-style so one read of a file feeds both the volume and the signature.
//! Deltas and patches use the `librsync` crate, which runs librsync's own C code.

use md4::{Digest, Md4};

/// Magic number of an MD4 librsync signature.
pub const MD4_SIG_MAGIC: u32 = 0x7273_0136;
/// Strong-sum length duplicity uses.
pub const STRONG_LEN: usize = 8;
const CHAR_OFFSET: u32 = 31;

/// duplicity 3.x's block length: the integer square root of the size rounded up to a multiple
/// of 512 (at least 512), capped by `--max-blocksize` when that is set.
pub fn block_len(file_len: u64, max_blocksize: u64) -> usize {
    let root = file_len.isqrt().max(1);
    let rounded = root.div_ceil(512) * 512;
    let b = if max_blocksize > 0 {
        rounded.min(max_blocksize)
    } else {
        rounded
    };
    b as usize
}

/// Builds a signature from data pushed in any chunk sizes.
pub struct SigMaker {
    block_len: usize,
    /// Blocks are summed eight at a time (AVX2).
    lanes: bool,
    pending: Vec<u8>,
    out: Vec<u8>,
}

impl SigMaker {
    pub fn new(block_len: usize) -> Self {
        let mut out = Vec::with_capacity(12);
        out.extend_from_slice(&MD4_SIG_MAGIC.to_be_bytes());
        out.extend_from_slice(&(block_len as u32).to_be_bytes());
        out.extend_from_slice(&(STRONG_LEN as u32).to_be_bytes());
        SigMaker {
            block_len,
            lanes: lanes_for(block_len),
            pending: Vec::with_capacity(block_len),
            out,
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        if !self.pending.is_empty() {
            let take = (self.block_len - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == self.block_len {
                let block = std::mem::take(&mut self.pending);
                self.push_block(&block);
                self.pending = block;
                self.pending.clear();
            }
        }
        #[cfg(target_arch = "x86_64")]
        if self.lanes {
            use super::md4x8::{digests, LANES};
            while data.len() >= LANES * self.block_len {
                // SAFETY: `lanes` is set only where the CPU has AVX2.
                let strong = unsafe { digests(data, self.block_len) };
                for (block, strong) in data.chunks_exact(self.block_len).zip(strong) {
                    self.out.extend_from_slice(&weak_sum(block).to_be_bytes());
                    self.out.extend_from_slice(&strong[..STRONG_LEN]);
                }
                data = &data[LANES * self.block_len..];
            }
        }
        while data.len() >= self.block_len {
            let (block, rest) = data.split_at(self.block_len);
            self.push_block(block);
            data = rest;
        }
        self.pending.extend_from_slice(data);
    }

    fn push_block(&mut self, block: &[u8]) {
        self.out.extend_from_slice(&weak_sum(block).to_be_bytes());
        let strong = Md4::digest(block);
        self.out.extend_from_slice(&strong[..STRONG_LEN]);
    }

    /// The finished signature (a short last block is summed as it is).
    pub fn finish(mut self) -> Vec<u8> {
        if !self.pending.is_empty() {
            let block = std::mem::take(&mut self.pending);
            self.push_block(&block);
        }
        self.out
    }
}

/// True when blocks of `block_len` bytes can be summed eight at a time on this CPU.
fn lanes_for(block_len: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        block_len % 64 == 0 && block_len < (1 << 28) && super::md4x8::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = block_len;
        false
    }
}

/// librsync's rollsum of one block.
fn weak_sum(block: &[u8]) -> u32 {
    let mut s1: u32 = 0;
    let mut s2: u32 = 0;
    for &b in block {
        s1 = s1.wrapping_add(b as u32);
        s2 = s2.wrapping_add(s1);
    }
    let len = block.len() as u32;
    s1 = s1.wrapping_add(len.wrapping_mul(CHAR_OFFSET));
    s2 = s2.wrapping_add((len.wrapping_mul(len.wrapping_add(1)) / 2).wrapping_mul(CHAR_OFFSET));
    (s2 << 16) | (s1 & 0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn reference(data: &[u8], block: usize) -> Vec<u8> {
        let mut s = librsync::Signature::with_options(
            data,
            block,
            STRONG_LEN,
            librsync::SignatureType::MD4,
        )
        .unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn matches_librsync_for_many_sizes_and_chunkings() {
        let mut data = Vec::new();
        let mut x: u32 = 12345;
        for _ in 0..300_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            data.push((x >> 16) as u8);
        }
        for size in [0usize, 1, 511, 512, 513, 1000, 70_000, 263_168, 300_000] {
            let d = &data[..size];
            let bl = block_len(size as u64, 0);
            let want = reference(d, bl);
            for chunk in [1usize, 7, 4096, 65536, usize::MAX] {
                let mut m = SigMaker::new(bl);
                for c in d.chunks(chunk.min(size.max(1))) {
                    m.update(c);
                }
                assert_eq!(m.finish(), want, "size {size} chunk {chunk}");
            }
        }
    }

    #[test]
    fn block_length_rule() {
        assert_eq!(block_len(0, 0), 512);
        assert_eq!(block_len(18, 0), 512);
        assert_eq!(block_len(263_168, 0), 512);
        assert_eq!(block_len(263_169, 0), 1024);
        assert_eq!(block_len(262_144, 0), 512);
        assert_eq!(block_len(3_146_605, 0), 2048);
        assert_eq!(block_len(100 << 30, 0), 327_680);
        assert_eq!(block_len(100 << 30, 2048), 2048);
    }
}
