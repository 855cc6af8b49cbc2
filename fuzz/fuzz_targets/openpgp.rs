//! OpenPGP decryption of arbitrary bytes through the path restores use for `.gpg` files,
//! with the fixtures' passphrase and secret key, so that real messages decrypt.
#![no_main]

use ferrodup::codec;
use ferrodup::crypto::{Crypto, Keyring};
use libfuzzer_sys::fuzz_target;
use std::io::Read;
use std::path::PathBuf;
use std::sync::LazyLock;

static CRYPTO: LazyLock<Crypto> = LazyLock::new(|| {
    // Errors only: the warning about messages without integrity protection is expected.
    ferrodup::log::set_level(0);
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/duplicity");
    let mut keyring = Keyring::default();
    keyring
        .load_file(&fixtures.join("pubkey/test-secret-key.asc"))
        .expect("the fixture key loads");
    Crypto {
        keyring,
        passphrase: Some("duplicity-fixture-passphrase".into()),
        sign_passphrase: None,
        recipients: Vec::new(),
        hidden_recipients: Vec::new(),
        sign_key: None,
        cipher: pgp::crypto::sym::SymmetricKeyAlgorithm::AES256,
        compression: None,
        // Never fall back to a gpg process: one per input would be far too slow.
        gpg_binary: PathBuf::from("/nonexistent/gpg"),
        use_agent: false,
    }
});

static PATH: LazyLock<PathBuf> = LazyLock::new(|| {
    std::env::temp_dir().join(format!("ferrodup-fuzz-openpgp-{}", std::process::id()))
});

fuzz_target!(|data: &[u8]| {
    std::fs::write(&*PATH, data).expect("temp file");
    let name = "duplicity-full.20240101T120000Z.vol1.difftar.gpg";
    if let Ok(r) = codec::open_stored(&PATH, name, Some(&CRYPTO)) {
        let _ = std::io::copy(&mut r.take(64 << 20), &mut std::io::sink());
    }
});
