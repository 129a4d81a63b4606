//! The repository on disk: its config, the key check and the blob encoding. The
//! format is written down in the man page (REPOSITORY FORMAT) and in
//! docs/repository-format.md; this module and its children are its one
//! implementation: [`pack`] (pack files: writer, reader, trailer) and [`index`]
//! (the in-memory chunk index built from the trailers).
//!
//! Every file is written to `tmp/`, fsynced, renamed into place and its directory
//! fsynced, so a file under `packs/` or `snapshots/` is complete or absent, and is
//! never changed again.

pub mod index;
pub mod pack;

pub use index::{ChunkSet, Index, Loc};
pub use pack::{PackReader, PackWriter, TrailerEntry};

use std::borrow::Cow;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use homelab_core::{Error, Exit, Result};
use serde::{Deserialize, Serialize};

use crate::crypto::{self, Id, Keys};

pub const FORMAT_NAME: &str = "backup-snap";
pub const FORMAT_VERSION: u32 = 1;
pub const PACK_MAGIC: &[u8; 8] = b"BSNPACK1";
/// Snapshot files written now (the tree in pieces, the header last).
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"BSNSNAP2";
/// Snapshot files of the first version (header first, the tree in one blob): read.
pub const SNAPSHOT_MAGIC_V1: &[u8; 8] = b"BSNSNAP1";
/// Default target size of a pack file.
pub const DEFAULT_PACK_SIZE: u64 = 16 * 1024 * 1024;
/// FastCDC 2020 sizes: smaller than restic's 1 MiB average, so a scattered edit
/// costs about 128 KiB of new data instead of a megabyte or more.
pub const CHUNK_MIN: u32 = 32 * 1024;
pub const CHUNK_AVG: u32 = 128 * 1024;
pub const CHUNK_MAX: u32 = 512 * 1024;
pub const ZSTD_LEVEL: i32 = 3;
const KEY_CHECK_TEXT: &[u8] = b"backup-snap key check";
/// A trailer or manifest larger than this is not one we wrote.
const METADATA_LIMIT: u64 = 1 << 30;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChunkerParams {
    pub algorithm: String,
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
    pub normalization: u32,
    /// "none" (seed 0) or "keyed" (derived from the key).
    pub seed: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionParams {
    pub aead: String,
    pub kdf: String,
    pub salt: String,
    pub key_check: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub format: String,
    pub version: u32,
    pub created: String,
    pub chunker: ChunkerParams,
    pub id_hash: String,
    pub compression: String,
    pub compression_level: i32,
    pub pack_size: u64,
    pub encryption: Option<EncryptionParams>,
}

/// An open repository.
pub struct Repo {
    pub path: PathBuf,
    pub config: Config,
    pub keys: Option<Keys>,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repo({})", self.path.display())
    }
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Maps an I/O error while writing the repository to an error that says what to do.
pub fn write_error(doing: impl std::fmt::Display, e: io::Error) -> Error {
    if e.raw_os_error() == Some(libc::ENOSPC) || e.raw_os_error() == Some(libc::EDQUOT) {
        return Error::new(
            Exit::IoErr,
            format!("{doing}: no space left on the repository's disk"),
        )
        .hint(
            "free space (forget old snapshots and prune) or use a bigger disk; the repository is still valid",
        );
    }
    Error::io(doing, e)
}

fn read_secret(path: &Path) -> Result<Vec<u8>> {
    let secret = fs::read(path).map_err(|e| {
        Error::io(format!("reading the key file {}", path.display()), e)
            .hint("give --key-file (or BACKUP_SNAP_KEY_FILE) a readable file")
    })?;
    if secret.len() < crypto::MIN_SECRET_LEN {
        return Err(Error::config(format!(
            "the key file {} holds {} bytes, fewer than {}",
            path.display(),
            secret.len(),
            crypto::MIN_SECRET_LEN
        ))
        .hint("create one with: head -c 32 /dev/urandom > KEYFILE (and keep a copy off the machine)"));
    }
    Ok(secret)
}

impl Repo {
    /// Creates a new repository at `path` (which must be absent or an empty directory).
    pub fn init(path: &Path, key_file: Option<&Path>, pack_size: u64) -> Result<Repo> {
        // Everything that can be checked is checked before anything is written, so a
        // failed init leaves nothing behind and the same command can simply be retried.
        let secret = key_file.map(read_secret).transpose()?;
        if path.join("config").exists() {
            return Err(Error::new(
                Exit::CantCreate,
                format!("{} already holds a repository", path.display()),
            )
            .hint("use it as it is, or give another --repo"));
        }
        let created_root = match fs::read_dir(path) {
            Ok(mut d) => {
                if d.next().is_some() {
                    return Err(
                        Error::new(Exit::CantCreate, format!("{} is not empty", path.display()))
                            .hint("give an empty or new directory to --repo"),
                    );
                }
                None
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // The first ancestor that does not exist: removed again on failure.
                let mut first = path.to_path_buf();
                while let Some(parent) = first.parent() {
                    if parent.as_os_str().is_empty() || parent.exists() {
                        break;
                    }
                    first = parent.to_path_buf();
                }
                create_dir_all(path).map_err(|e| write_error(format!("creating {}", path.display()), e))?;
                Some(first)
            }
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        let result = Self::init_into(path, secret.as_deref(), pack_size);
        if result.is_err() {
            match &created_root {
                Some(first) => {
                    let _ = fs::remove_dir_all(first);
                }
                None => {
                    // The directory was empty: all in it is this init's.
                    let _ = fs::remove_file(path.join("config"));
                    for d in ["packs", "snapshots", "locks", "tmp", "state"] {
                        let _ = fs::remove_dir_all(path.join(d));
                    }
                }
            }
        }
        result
    }

    /// The writing half of init, into an existing empty directory.
    fn init_into(path: &Path, secret: Option<&[u8]>, pack_size: u64) -> Result<Repo> {
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE))
                .map_err(|e| Error::io(format!("making {} private (mode 0700)", path.display()), e))?;
        }
        for d in ["packs", "snapshots", "locks", "tmp", "state"] {
            create_dir(&path.join(d))
                .map_err(|e| write_error(format!("creating {}", path.join(d).display()), e))?;
        }
        let (keys, encryption) = match secret {
            Some(secret) => {
                let mut salt = [0u8; 32];
                crypto::random(&mut salt);
                let keys = Keys::derive(secret, &salt);
                let check = keys.seal(KEY_CHECK_TEXT);
                (
                    Some(keys),
                    Some(EncryptionParams {
                        aead: "xchacha20-poly1305".into(),
                        kdf: "blake3-derive-key".into(),
                        salt: crypto::hex(&salt),
                        key_check: crypto::hex(&check),
                    }),
                )
            }
            None => (None, None),
        };
        let config = Config {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            created: chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            chunker: ChunkerParams {
                algorithm: "fastcdc-2020".into(),
                min_size: CHUNK_MIN,
                avg_size: CHUNK_AVG,
                max_size: CHUNK_MAX,
                normalization: 1,
                seed: if keys.is_some() { "keyed" } else { "none" }.into(),
            },
            id_hash: if keys.is_some() { "blake3-keyed" } else { "blake3" }.into(),
            compression: "zstd".into(),
            compression_level: ZSTD_LEVEL,
            pack_size,
            encryption,
        };
        let repo = Repo {
            path: path.to_path_buf(),
            config,
            keys,
        };
        let json = serde_json::to_vec_pretty(&repo.config)
            .map_err(|e| Error::bug(format!("serialising the config: {e}")))?;
        repo.write_atomic(&path.join("config"), &json)?;
        fsync_dir(path);
        Ok(repo)
    }

    /// Opens an existing repository, checking the key when it is encrypted.
    pub fn open(path: &Path, key_file: Option<&Path>) -> Result<Repo> {
        let cfg_path = path.join("config");
        let raw = fs::read(&cfg_path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::new(
                    Exit::NoInput,
                    format!(
                        "{} is not a backup-snap repository (no config file)",
                        path.display()
                    ),
                )
                .hint("check --repo, or create one with: backup-snap --repo PATH init")
            } else {
                Error::io(format!("reading {}", cfg_path.display()), e)
            }
        })?;
        let config: Config = serde_json::from_slice(&raw).map_err(|e| {
            Error::data(format!("{} is damaged: {e}", cfg_path.display()))
                .hint("restore the config file from a copy of the repository")
        })?;
        if config.format != FORMAT_NAME || config.version != FORMAT_VERSION {
            return Err(Error::data(format!(
                "{}: format {} version {} is not backup-snap version {FORMAT_VERSION}",
                cfg_path.display(),
                config.format,
                config.version
            ))
            .hint("use the backup-snap version that created this repository"));
        }
        let c = &config.chunker;
        if c.algorithm != "fastcdc-2020"
            || !(64..=1 << 20).contains(&c.min_size)
            || !(256..=4 << 20).contains(&c.avg_size)
            || !(1024..=16 << 20).contains(&c.max_size)
            || c.min_size > c.avg_size
            || c.avg_size > c.max_size
            || !c.min_size.is_multiple_of(2)
            || !c.avg_size.is_multiple_of(2)
            || !c.max_size.is_multiple_of(2)
            || c.normalization > 3
            || config.pack_size < 4096
        {
            return Err(Error::data(format!(
                "{}: chunker or pack parameters this version cannot use",
                cfg_path.display()
            )));
        }
        let keys = match (&config.encryption, key_file) {
            (None, None) => None,
            (None, Some(kf)) => {
                // Ignoring it would let the user believe the backups are encrypted.
                return Err(Error::config(format!(
                    "the repository {} is not encrypted, but a key file ({}) was given: it would not be used",
                    path.display(),
                    kf.display()
                ))
                .hint(
                    "leave out --key-file (and BACKUP_SNAP_KEY_FILE) for this repository, or back up into a new one made with --key-file ... init",
                ));
            }
            (Some(_), None) => {
                return Err(
                    Error::config(format!("the repository {} is encrypted", path.display()))
                        .hint("give its key with --key-file (or BACKUP_SNAP_KEY_FILE)"),
                );
            }
            (Some(enc), Some(kf)) => {
                let secret = read_secret(kf)?;
                let salt = crypto::parse_hex(&enc.salt)
                    .ok_or_else(|| Error::data(format!("{}: bad salt", cfg_path.display())))?;
                let keys = Keys::derive(&secret, &salt);
                let check = crypto::parse_hex(&enc.key_check)
                    .ok_or_else(|| Error::data(format!("{}: bad key check", cfg_path.display())))?;
                if keys.open(&check).as_deref() != Some(KEY_CHECK_TEXT) {
                    return Err(Error::config(format!(
                        "the key file {} does not open the repository {}",
                        kf.display(),
                        path.display()
                    ))
                    .hint("give the key file the repository was created with"));
                }
                Some(keys)
            }
        };
        for d in ["packs", "snapshots", "locks", "tmp", "state"] {
            let p = path.join(d);
            if !p.is_dir() {
                create_dir_all(&p).map_err(|e| write_error(format!("creating {}", p.display()), e))?;
            }
        }
        Ok(Repo {
            path: path.to_path_buf(),
            config,
            keys,
        })
    }

    pub fn chunker_seed(&self) -> u64 {
        self.keys.as_ref().map_or(0, |k| k.chunker_seed)
    }

    pub fn chunk_id(&self, data: &[u8]) -> Id {
        crypto::chunk_id(self.keys.as_ref(), data)
    }

    /// A new file name under `tmp/`, unique to this process.
    pub fn tmp_path(&self, what: &str) -> PathBuf {
        let n = TMP_SEQ.fetch_add(1, Ordering::SeqCst);
        let mut r = [0u8; 4];
        crypto::random(&mut r);
        self.path
            .join("tmp")
            .join(format!("{what}-{}-{n}-{}", std::process::id(), crypto::hex(&r)))
    }

    /// Writes `bytes` to `dest` through a temporary file: complete or absent.
    pub fn write_atomic(&self, dest: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.tmp_path("file");
        homelab_core::fs::write_atomic(dest, &tmp, &[bytes], Some(FILE_MODE))
            .map_err(|w| write_error(format!("writing {}", dest.display()), w.err))
    }

    pub fn pack_path(&self, id: &Id) -> PathBuf {
        let h = crypto::hex(id);
        self.path.join("packs").join(&h[..2]).join(h)
    }

    /// Encodes a blob: a type byte (0 stored, 1 zstd) and the payload, sealed when
    /// the repository is encrypted.
    pub fn encode_blob(&self, data: &[u8], zc: &mut zstd::bulk::Compressor<'_>) -> Result<Vec<u8>> {
        let compressed = zc
            .compress(data)
            .map_err(|e| Error::bug(format!("zstd compression failed: {e}")))?;
        let mut plain = Vec::with_capacity(1 + compressed.len().min(data.len()));
        if compressed.len() < data.len() {
            plain.push(1);
            plain.extend_from_slice(&compressed);
        } else {
            plain.push(0);
            plain.extend_from_slice(data);
        }
        Ok(match &self.keys {
            Some(k) => k.seal(&plain),
            None => plain,
        })
    }

    /// Opens a stored blob (authenticates and decrypts it in an encrypted
    /// repository) and splits off its type byte.
    fn open_blob<'a>(&self, stored: &'a [u8]) -> std::result::Result<(u8, Cow<'a, [u8]>), String> {
        let plain: Cow<'a, [u8]> = match &self.keys {
            Some(k) => Cow::Owned(
                k.open(stored)
                    .ok_or("authentication failed (damaged or altered)")?,
            ),
            None => Cow::Borrowed(stored),
        };
        let t = *plain.first().ok_or("empty blob")?;
        Ok((
            t,
            match plain {
                Cow::Borrowed(b) => Cow::Borrowed(&b[1..]),
                Cow::Owned(mut v) => {
                    v.remove(0);
                    Cow::Owned(v)
                }
            },
        ))
    }

    /// Decodes a blob; `limit` bounds the plaintext size. The error says what is wrong.
    pub fn decode_blob(&self, stored: &[u8], limit: usize) -> std::result::Result<Vec<u8>, String> {
        match self.open_blob(stored)? {
            (0, rest) => Ok(rest.into_owned()),
            (1, rest) => zstd::bulk::decompress(&rest, limit).map_err(|e| format!("zstd: {e}")),
            (t, _) => Err(format!("unknown blob type {t}")),
        }
    }

    /// Decodes a metadata blob (trailer or manifest part), without a fixed size bound.
    pub fn decode_metadata(&self, stored: &[u8]) -> std::result::Result<Vec<u8>, String> {
        match self.open_blob(stored)? {
            (0, rest) => Ok(rest.into_owned()),
            (1, rest) => {
                let mut out = Vec::new();
                zstd::stream::read::Decoder::new(&rest[..])
                    .map_err(|e| format!("zstd: {e}"))?
                    .take(METADATA_LIMIT)
                    .read_to_end(&mut out)
                    .map_err(|e| format!("zstd: {e}"))?;
                Ok(out)
            }
            (t, _) => Err(format!("unknown blob type {t}")),
        }
    }

    /// Encodes metadata: always zstd (level 3), sealed when encrypted.
    pub fn encode_metadata(&self, data: &[u8]) -> Result<Vec<u8>> {
        let mut zc = zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(|e| Error::bug(format!("zstd: {e}")))?;
        self.encode_blob(data, &mut zc)
    }

    pub fn max_chunk(&self) -> usize {
        self.config.chunker.max_size as usize
    }
}

/// Mode of every repository directory and file, whatever the umask: the
/// repository holds copies of /etc/shadow, secrets and keys.
pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Creates (or truncates) a repository file with mode 0600.
pub fn create_file(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    // The mode given to open is reduced by the umask; this sets it exactly.
    f.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    Ok(f)
}

/// Creates one repository directory with mode 0700.
pub fn create_dir(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new().mode(DIR_MODE).create(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE))
}

/// Creates a repository directory with mode 0700 and, as needed, its parents
/// (those with the usual modes: they are not the repository's).
pub fn create_dir_all(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        fs::create_dir_all(parent)?;
    }
    match create_dir(path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        r => r,
    }
}

/// fsyncs a directory so a rename or unlink in it is durable (best effort: some
/// filesystems do not support it).
pub fn fsync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
