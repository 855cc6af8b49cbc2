//! Deterministic edits that take the fixture tree through further states, touching every
//! kind of change an incremental must carry.

use super::set_mtime;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Deterministic pseudo-random bytes.
pub fn prng_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

fn write(p: &Path, data: &[u8], mtime: i64) {
    fs::write(p, data).unwrap();
    set_mtime(p, mtime);
}

/// State 3: deletions of a whole directory, a new multivol file, a type change each way,
/// a chmod, and a grown file.
pub fn state3(root: &Path, mtime: i64) {
    fs::remove_dir_all(root.join("sub/deeper")).unwrap();
    write(&root.join("new3.bin"), &prng_bytes(3, 200_000), mtime);
    let hello = root.join("hello.txt");
    fs::set_permissions(&hello, fs::Permissions::from_mode(0o640)).unwrap();
    set_mtime(&hello, mtime);
    fs::remove_file(root.join("link-to-hello")).unwrap();
    write(&root.join("link-to-hello"), b"now a regular file\n", mtime);
    fs::remove_file(root.join("binary.bin")).unwrap();
    fs::create_dir(root.join("binary.bin")).unwrap();
    write(
        &root.join("binary.bin/inside.txt"),
        b"a file where a file was\n",
        mtime,
    );
    set_mtime(&root.join("binary.bin"), mtime);
    let mut medium = fs::read(root.join("medium.txt")).unwrap();
    medium.extend(prng_bytes(33, 70_000));
    write(&root.join("medium.txt"), &medium, mtime);
    set_mtime(root, mtime);
}

/// State 4: a delta in the middle of a large file, an empty directory, a removed fifo, a
/// directory coming back, and a file that becomes a symlink.
pub fn state4(root: &Path, mtime: i64) {
    let mut data = fs::read(root.join("new3.bin")).unwrap();
    data[100_000..100_100].copy_from_slice(&prng_bytes(4, 100));
    write(&root.join("new3.bin"), &data, mtime);
    fs::create_dir(root.join("emptydir")).unwrap();
    set_mtime(&root.join("emptydir"), mtime);
    fs::remove_file(root.join("a-fifo")).unwrap();
    fs::create_dir(root.join("sub/deeper")).unwrap();
    write(&root.join("sub/deeper/again.txt"), b"back again\n", mtime);
    set_mtime(&root.join("sub/deeper"), mtime);
    set_mtime(&root.join("sub"), mtime);
    fs::remove_file(root.join("changing.txt")).unwrap();
    std::os::unix::fs::symlink("lorem.txt", root.join("changing.txt")).unwrap();
    set_mtime(root, mtime);
}
