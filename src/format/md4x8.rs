//! MD4 of eight equal blocks at once, one block per 32-bit lane of AVX2 registers: the
//! strong sums of a signature are independent, and MD4 on one block at a time leaves most
//! of a core idle. Used where the CPU has AVX2; the `md4` crate does the rest (and is what
//! the tests compare with).

use std::arch::x86_64::*;

/// Blocks per call.
pub const LANES: usize = 8;

/// True when [`digests`] can run on this CPU.
pub fn available() -> bool {
    is_x86_feature_detected!("avx2")
}

/// The MD4 digests of the [`LANES`] blocks of `len` bytes that `data` starts with. `len` is
/// a multiple of 64, and `LANES * len` is at most `data.len()` and below 2 GiB.
///
/// # Safety
/// The CPU must have AVX2 ([`available`]).
#[target_feature(enable = "avx2")]
pub unsafe fn digests(data: &[u8], len: usize) -> [[u8; 16]; LANES] {
    assert!(len % 64 == 0 && LANES * len <= data.len() && LANES * len < i32::MAX as usize);
    let mut offsets = [0i32; LANES];
    for (i, o) in offsets.iter_mut().enumerate() {
        *o = (i * len) as i32;
    }
    let mut state = [
        _mm256_set1_epi32(0x6745_2301),
        _mm256_set1_epi32(0xefcd_ab89u32 as i32),
        _mm256_set1_epi32(0x98ba_dcfeu32 as i32),
        _mm256_set1_epi32(0x1032_5476),
    ];
    // SAFETY: offsets holds 8 i32s: 32 bytes.
    let idx = unsafe { _mm256_loadu_si256(offsets.as_ptr() as *const __m256i) };
    // The padding: one 0x80 byte, zeros, the length in bits; the same in every lane.
    let bits = (len as u64) * 8;
    let mut pad = [_mm256_setzero_si256(); 16];
    pad[0] = _mm256_set1_epi32(0x80);
    pad[14] = _mm256_set1_epi32(bits as u32 as i32);
    pad[15] = _mm256_set1_epi32((bits >> 32) as u32 as i32);
    let (k2, k3) = (
        _mm256_set1_epi32(0x5a82_7999),
        _mm256_set1_epi32(0x6ed9_eba1),
    );
    let zero = _mm256_setzero_si256();
    let mut x = [zero; 16];
    let chunks = len / 64;
    for chunk in 0..=chunks {
        if chunk == chunks {
            x = pad;
        } else {
            // SAFETY: every lane reads below offset + chunk * 64 + 64 <= LANES * len <=
            // data.len(), checked above.
            let base = unsafe { data.as_ptr().add(chunk * 64) } as *const i32;
            for (j, w) in x.iter_mut().enumerate() {
                // SAFETY: as above: 4 bytes at base + 4j + offset in each lane.
                *w = unsafe { _mm256_i32gather_epi32::<1>(base.add(j), idx) };
            }
        }
        let [mut a, mut b, mut c, mut d] = state;
        macro_rules! step {
            ($a:ident, $f:expr, $k:expr, $add:expr, $s:literal) => {
                let v = _mm256_add_epi32(_mm256_add_epi32($a, $f), _mm256_add_epi32(x[$k], $add));
                $a = _mm256_or_si256(
                    _mm256_slli_epi32::<$s>(v),
                    _mm256_srli_epi32::<{ 32 - $s }>(v),
                );
            };
        }
        macro_rules! f {
            ($x:expr, $y:expr, $z:expr) => {
                _mm256_or_si256(_mm256_and_si256($x, $y), _mm256_andnot_si256($x, $z))
            };
        }
        macro_rules! g {
            ($x:expr, $y:expr, $z:expr) => {
                _mm256_or_si256(
                    _mm256_and_si256($x, $y),
                    _mm256_and_si256(_mm256_or_si256($x, $y), $z),
                )
            };
        }
        macro_rules! h {
            ($x:expr, $y:expr, $z:expr) => {
                _mm256_xor_si256(_mm256_xor_si256($x, $y), $z)
            };
        }
        for k in [0, 4, 8, 12] {
            step!(a, f!(b, c, d), k, zero, 3);
            step!(d, f!(a, b, c), k + 1, zero, 7);
            step!(c, f!(d, a, b), k + 2, zero, 11);
            step!(b, f!(c, d, a), k + 3, zero, 19);
        }
        for k in [0, 1, 2, 3] {
            step!(a, g!(b, c, d), k, k2, 3);
            step!(d, g!(a, b, c), k + 4, k2, 5);
            step!(c, g!(d, a, b), k + 8, k2, 9);
            step!(b, g!(c, d, a), k + 12, k2, 13);
        }
        for k in [0, 2, 1, 3] {
            step!(a, h!(b, c, d), k, k3, 3);
            step!(d, h!(a, b, c), k + 8, k3, 9);
            step!(c, h!(d, a, b), k + 4, k3, 11);
            step!(b, h!(c, d, a), k + 12, k3, 15);
        }
        state = [
            _mm256_add_epi32(state[0], a),
            _mm256_add_epi32(state[1], b),
            _mm256_add_epi32(state[2], c),
            _mm256_add_epi32(state[3], d),
        ];
    }

    let mut words = [[0u32; LANES]; 4];
    for (w, s) in words.iter_mut().zip(state) {
        // SAFETY: w holds 8 u32s: 32 bytes.
        unsafe { _mm256_storeu_si256(w.as_mut_ptr() as *mut __m256i, s) };
    }
    let mut out = [[0u8; 16]; LANES];
    for (lane, d) in out.iter_mut().enumerate() {
        for (k, w) in words.iter().enumerate() {
            d[4 * k..4 * k + 4].copy_from_slice(&w[lane].to_le_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use md4::{Digest, Md4};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn equal_to_md4_one_block_at_a_time(chunks in 1usize..40, seed in any::<u64>()) {
            prop_assume!(available());
            let len = chunks * 64;
            let mut x = seed | 1;
            let data: Vec<u8> = (0..LANES * len + 13)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            // SAFETY: AVX2 is there (assumed above).
            let got = unsafe { digests(&data, len) };
            for (lane, d) in got.iter().enumerate() {
                let want = Md4::digest(&data[lane * len..(lane + 1) * len]);
                prop_assert_eq!(&d[..], &want[..], "lane {}", lane);
            }
        }
    }
}
