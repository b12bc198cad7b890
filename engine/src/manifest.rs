//! The manifest: the durable list of live files of every keyspace, plus
//! the engine counters that must survive a restart. Each change writes a
//! complete new snapshot (`MANIFEST-{n:06}`, never an edit log) and then
//! atomically repoints `CURRENT` at it, so recovery reads exactly one file
//! and never replays edits. The byte layout and the update protocol are
//! described in `docs/format/manifest.md`.
//!
//! ```text
//! MANIFEST-n: [magic u64][format u32][payload len u32][payload][xxh3 u64] zero padding to 4096
//! CURRENT:    [magic u64][format u32][name len u32][name][manifest xxh3 u64][xxh3 u64] padding
//! ```
//!
//! Decoding is bounds-checked throughout: hostile bytes give
//! [`Error::Corruption`], [`Error::ChecksumMismatch`] or
//! [`Error::UnsupportedVersion`], never a panic.

use crate::coding::{checksum, put_len_prefixed, put_u32, put_u64, put_varint, Reader};
use crate::key::{cmp_internal, SeqNo, SEQ_MAX, TRAILER_SIZE, USER_KEY_SIZE_MAX};
use crate::storage::{align_up, Storage, StorageFile};
use crate::version::FileMeta;
use crate::{Error, Result};
use std::cmp::Ordering;
use std::collections::HashSet;

/// First 8 bytes of every manifest file.
pub const MANIFEST_MAGIC: u64 = u64::from_le_bytes(*b"LUMAMANI");
/// First 8 bytes of `CURRENT`.
pub const CURRENT_MAGIC: u64 = u64::from_le_bytes(*b"LUMACURR");
/// The format version this build writes and reads.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;
/// Name of the pointer file.
pub const CURRENT_FILE_NAME: &str = "CURRENT";
/// Name `CURRENT` is written under before the atomic rename.
pub const CURRENT_TMP_FILE_NAME: &str = "CURRENT.tmp";
/// Largest manifest payload accepted (bytes): room for ~1M files.
pub const MANIFEST_PAYLOAD_BYTES_MAX: usize = 256 << 20;
/// Largest number of levels a keyspace may record.
pub const MANIFEST_LEVELS_MAX: usize = 64;
/// Largest keyspace name (bytes).
pub const KEYSPACE_NAME_BYTES_MAX: usize = 255;

const HEADER_SIZE: usize = 16;
const CHECKSUM_SIZE: usize = 8;
const MANIFEST_NAME_PREFIX: &str = "MANIFEST-";
const MANIFEST_NAME_BYTES_MAX: usize = 64;

const _: () = assert!(MANIFEST_PAYLOAD_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(KEYSPACE_NAME_BYTES_MAX < MANIFEST_NAME_BYTES_MAX * 8);

/// Everything the engine must know at startup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ManifestState {
    /// Next unused file number (tables, WAL segments and manifests share
    /// one counter); every recorded file number is below it.
    pub next_file_number: u64,
    /// Largest sequence number durable in a table; WAL replay continues after it.
    pub last_seq: SeqNo,
    pub keyspaces: Vec<KeyspaceManifest>,
}

/// The live files of one keyspace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyspaceManifest {
    pub id: u32,
    pub name: String,
    /// Oldest WAL segment still holding this keyspace's unflushed data.
    pub log_number: u64,
    /// `levels[0]` is L0, newest first; L1+ sorted by smallest key.
    pub levels: Vec<Vec<FileMeta>>,
}

/// `MANIFEST-{number:06}`.
pub fn manifest_file_name(number: u64) -> String {
    format!("{MANIFEST_NAME_PREFIX}{number:06}")
}

/// The number in a manifest file name, or `None` if `name` is not one
/// (exactly the names [`manifest_file_name`] produces).
pub fn parse_manifest_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(MANIFEST_NAME_PREFIX)?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number: u64 = digits.parse().ok()?;
    (manifest_file_name(number) == name).then_some(number)
}

/// Whether `name` is a manifest file (live or left over from a crash).
pub fn is_manifest_file_name(name: &str) -> bool {
    parse_manifest_file_name(name).is_some()
}

// ---------------------------------------------------------------------------
// Encoding.

/// Encodes `state` as a complete manifest file image, padded to 4096.
/// Panics if `state` breaks a manifest invariant (a caller bug).
pub fn encode_manifest(state: &ManifestState) -> Vec<u8> {
    if let Err(e) = validate(state, "<manifest being written>") {
        panic!("refusing to write an invalid manifest: {e}");
    }
    let mut payload = Vec::new();
    put_varint(&mut payload, state.next_file_number);
    put_varint(&mut payload, state.last_seq);
    put_varint(&mut payload, state.keyspaces.len() as u64);
    for ks in &state.keyspaces {
        put_varint(&mut payload, u64::from(ks.id));
        put_len_prefixed(&mut payload, ks.name.as_bytes());
        put_varint(&mut payload, ks.log_number);
        put_varint(&mut payload, ks.levels.len() as u64);
        for level in &ks.levels {
            put_varint(&mut payload, level.len() as u64);
            for f in level {
                put_varint(&mut payload, f.number);
                put_varint(&mut payload, f.size);
                put_len_prefixed(&mut payload, &f.smallest);
                put_len_prefixed(&mut payload, &f.largest);
                put_varint(&mut payload, f.smallest_seq);
                put_varint(&mut payload, f.largest_seq);
                put_varint(&mut payload, f.entries);
                put_varint(&mut payload, f.point_tombstones);
                put_varint(&mut payload, f.range_tombstones);
            }
        }
    }
    assert!(
        payload.len() <= MANIFEST_PAYLOAD_BYTES_MAX,
        "manifest payload of {} bytes exceeds the limit",
        payload.len()
    );
    let mut out = Vec::with_capacity(align_up(HEADER_SIZE + payload.len() + CHECKSUM_SIZE));
    put_u64(&mut out, MANIFEST_MAGIC);
    put_u32(&mut out, MANIFEST_FORMAT_VERSION);
    put_u32(&mut out, payload.len() as u32);
    out.extend_from_slice(&payload);
    let sum = checksum(&out);
    put_u64(&mut out, sum);
    out.resize(align_up(out.len()), 0);
    out
}

/// Decodes a manifest file image read from `file`; returns the state and
/// the file's checksum (which `CURRENT` records).
pub fn decode_manifest(bytes: &[u8], file: &str) -> Result<(ManifestState, u64)> {
    let mut r = Reader::new(bytes);
    let header = |what: &str| Error::corruption(file, 0, format!("truncated header: no {what}"));
    let magic = r.u64().ok_or_else(|| header("magic"))?;
    if magic != MANIFEST_MAGIC {
        return Err(Error::corruption(file, 0, format!("bad magic {magic:#018x}")));
    }
    let version = r.u32().ok_or_else(|| header("format version"))?;
    if version != MANIFEST_FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            file: file.to_string(),
            found: version,
            supported: MANIFEST_FORMAT_VERSION,
        });
    }
    let len = r.u32().ok_or_else(|| header("payload length"))? as usize;
    if len > MANIFEST_PAYLOAD_BYTES_MAX {
        return Err(Error::corruption(
            file,
            12,
            format!("payload length {len} exceeds the limit"),
        ));
    }
    let payload = r.bytes(len).ok_or_else(|| {
        Error::corruption(
            file,
            12,
            format!(
                "payload length {len} runs past the end of the {}-byte file",
                bytes.len()
            ),
        )
    })?;
    let sum_offset = HEADER_SIZE + len;
    let stored = r
        .u64()
        .ok_or_else(|| Error::corruption(file, sum_offset as u64, "truncated before the checksum"))?;
    let actual = checksum(&bytes[..sum_offset]);
    if stored != actual {
        return Err(Error::ChecksumMismatch {
            file: file.to_string(),
            offset: sum_offset as u64,
            expected: stored,
            actual,
        });
    }
    let state = decode_payload(payload, file)?;
    validate(&state, file)?;
    Ok((state, stored))
}

/// Decodes the payload; offsets in errors are file offsets.
fn decode_payload(payload: &[u8], file: &str) -> Result<ManifestState> {
    let mut r = Reader::new(payload);
    let bad = |r: &Reader, what: &str| Error::corruption(file, (HEADER_SIZE + r.position()) as u64, what.to_string());
    let next_file_number = r.varint().ok_or_else(|| bad(&r, "bad next file number"))?;
    let last_seq = r.varint().ok_or_else(|| bad(&r, "bad last sequence number"))?;
    // Every record takes at least one byte, which bounds every count.
    let ks_count = r
        .varint_len(r.remaining())
        .ok_or_else(|| bad(&r, "bad keyspace count"))?;
    let mut keyspaces = Vec::with_capacity(ks_count);
    for _ in 0..ks_count {
        let id = r.varint().ok_or_else(|| bad(&r, "bad keyspace id"))?;
        let id = u32::try_from(id).map_err(|_| bad(&r, "keyspace id exceeds u32"))?;
        let name = r.len_prefixed().ok_or_else(|| bad(&r, "bad keyspace name"))?;
        if name.len() > KEYSPACE_NAME_BYTES_MAX {
            return Err(bad(&r, "keyspace name too long"));
        }
        let name = std::str::from_utf8(name).map_err(|_| bad(&r, "keyspace name is not UTF-8"))?;
        let log_number = r.varint().ok_or_else(|| bad(&r, "bad log number"))?;
        let level_count = r
            .varint_len(MANIFEST_LEVELS_MAX)
            .ok_or_else(|| bad(&r, "bad level count"))?;
        let mut levels = Vec::with_capacity(level_count);
        for _ in 0..level_count {
            let file_count = r.varint_len(r.remaining()).ok_or_else(|| bad(&r, "bad file count"))?;
            let mut files = Vec::with_capacity(file_count);
            for _ in 0..file_count {
                files.push(decode_file(&mut r, file)?);
            }
            levels.push(files);
        }
        keyspaces.push(KeyspaceManifest {
            id,
            name: name.to_string(),
            log_number,
            levels,
        });
    }
    if !r.is_empty() {
        return Err(bad(&r, "trailing bytes after the last keyspace"));
    }
    Ok(ManifestState {
        next_file_number,
        last_seq,
        keyspaces,
    })
}

fn decode_file(r: &mut Reader, file: &str) -> Result<FileMeta> {
    let field = |r: &mut Reader, what: &str| {
        r.varint()
            .ok_or_else(|| Error::corruption(file, (HEADER_SIZE + r.position()) as u64, format!("bad table {what}")))
    };
    let number = field(r, "number")?;
    let size = field(r, "size")?;
    let key_max = USER_KEY_SIZE_MAX + TRAILER_SIZE;
    let ikey = |r: &mut Reader, what: &str| -> Result<Vec<u8>> {
        let at = (HEADER_SIZE + r.position()) as u64;
        let k = r
            .len_prefixed()
            .ok_or_else(|| Error::corruption(file, at, format!("bad {what} key of table {number}")))?;
        if k.len() < TRAILER_SIZE || k.len() > key_max {
            return Err(Error::corruption(
                file,
                at,
                format!("{what} key of table {number} has impossible length {}", k.len()),
            ));
        }
        Ok(k.to_vec())
    };
    let smallest = ikey(r, "smallest")?;
    let largest = ikey(r, "largest")?;
    Ok(FileMeta {
        number,
        size,
        smallest,
        largest,
        smallest_seq: field(r, "smallest seq")?,
        largest_seq: field(r, "largest seq")?,
        entries: field(r, "entry count")?,
        point_tombstones: field(r, "point tombstone count")?,
        range_tombstones: field(r, "range tombstone count")?,
    })
}

/// The invariants a manifest must keep, as a corruption error naming `file`
/// (offset 0: they concern the whole file).
fn validate(state: &ManifestState, file: &str) -> Result<()> {
    let fail = |reason: String| Err(Error::corruption(file, 0, reason));
    if state.last_seq > SEQ_MAX {
        return fail(format!("last sequence number {} exceeds SEQ_MAX", state.last_seq));
    }
    let mut ids = HashSet::new();
    let mut names = HashSet::new();
    let mut numbers = HashSet::new();
    for ks in &state.keyspaces {
        if !ids.insert(ks.id) {
            return fail(format!("keyspace id {} recorded twice", ks.id));
        }
        if !names.insert(ks.name.as_str()) {
            return fail(format!("keyspace name {:?} recorded twice", ks.name));
        }
        if ks.name.len() > KEYSPACE_NAME_BYTES_MAX {
            return fail(format!("keyspace name {:?} too long", ks.name));
        }
        if ks.levels.len() > MANIFEST_LEVELS_MAX {
            return fail(format!("keyspace {:?} has {} levels", ks.name, ks.levels.len()));
        }
        for (level, files) in ks.levels.iter().enumerate() {
            for f in files {
                let what = format!("keyspace {:?} L{level} table {}", ks.name, f.number);
                if !numbers.insert(f.number) {
                    return fail(format!("{what}: file number recorded twice"));
                }
                if f.number >= state.next_file_number {
                    return fail(format!(
                        "{what}: file number not below next file number {}",
                        state.next_file_number
                    ));
                }
                let key_max = USER_KEY_SIZE_MAX + TRAILER_SIZE;
                for bound in [&f.smallest, &f.largest] {
                    if bound.len() < TRAILER_SIZE || bound.len() > key_max {
                        return fail(format!("{what}: bound of impossible length {}", bound.len()));
                    }
                }
                if f.smallest_seq > f.largest_seq || f.largest_seq > state.last_seq {
                    return fail(format!(
                        "{what}: sequence range {}..={} outside 0..={}",
                        f.smallest_seq, f.largest_seq, state.last_seq
                    ));
                }
                if f.point_tombstones > f.entries {
                    return fail(format!("{what}: more tombstones than entries"));
                }
                if cmp_internal(&f.smallest, &f.largest) == Ordering::Greater {
                    return fail(format!("{what}: smallest key after largest key"));
                }
            }
            if level == 0 {
                if files.windows(2).any(|w| w[0].largest_seq < w[1].largest_seq) {
                    return fail(format!("keyspace {:?} L0 not ordered newest first", ks.name));
                }
            } else if files
                .windows(2)
                .any(|w| cmp_internal(&w[0].largest, &w[1].smallest) != Ordering::Less)
            {
                return fail(format!("keyspace {:?} L{level} files unsorted or overlapping", ks.name));
            }
        }
    }
    Ok(())
}

fn encode_current(manifest_name: &str, manifest_checksum: u64) -> Vec<u8> {
    assert!(is_manifest_file_name(manifest_name));
    let mut out = Vec::with_capacity(4096);
    put_u64(&mut out, CURRENT_MAGIC);
    put_u32(&mut out, MANIFEST_FORMAT_VERSION);
    put_u32(&mut out, manifest_name.len() as u32);
    out.extend_from_slice(manifest_name.as_bytes());
    put_u64(&mut out, manifest_checksum);
    let sum = checksum(&out);
    put_u64(&mut out, sum);
    out.resize(align_up(out.len()), 0);
    out
}

/// Decodes `CURRENT`: the manifest's number and its expected checksum.
fn decode_current(bytes: &[u8]) -> Result<(u64, u64)> {
    let file = CURRENT_FILE_NAME;
    let mut r = Reader::new(bytes);
    let truncated = |r: &Reader| Error::corruption(file, r.position() as u64, "truncated");
    let magic = r.u64().ok_or_else(|| truncated(&r))?;
    if magic != CURRENT_MAGIC {
        return Err(Error::corruption(file, 0, format!("bad magic {magic:#018x}")));
    }
    let version = r.u32().ok_or_else(|| truncated(&r))?;
    if version != MANIFEST_FORMAT_VERSION {
        return Err(Error::UnsupportedVersion {
            file: file.to_string(),
            found: version,
            supported: MANIFEST_FORMAT_VERSION,
        });
    }
    let len = r.u32().ok_or_else(|| truncated(&r))? as usize;
    if len > MANIFEST_NAME_BYTES_MAX {
        return Err(Error::corruption(
            file,
            12,
            format!("manifest name length {len} exceeds the limit"),
        ));
    }
    let name = r.bytes(len).ok_or_else(|| truncated(&r))?;
    let manifest_checksum = r.u64().ok_or_else(|| truncated(&r))?;
    let sum_offset = r.position();
    let stored = r.u64().ok_or_else(|| truncated(&r))?;
    let actual = checksum(&bytes[..sum_offset]);
    if stored != actual {
        return Err(Error::ChecksumMismatch {
            file: file.to_string(),
            offset: sum_offset as u64,
            expected: stored,
            actual,
        });
    }
    let number = std::str::from_utf8(name)
        .ok()
        .and_then(parse_manifest_file_name)
        .ok_or_else(|| Error::corruption(file, HEADER_SIZE as u64, "does not name a manifest file"))?;
    Ok((number, manifest_checksum))
}

// ---------------------------------------------------------------------------
// I/O.

/// Durably replaces the engine's manifest with `state`, written as
/// `MANIFEST-{manifest_number:06}` (a number from the file-number counter
/// that no existing file uses). When this returns `Ok`, a crash at any
/// later point recovers `state`; if it returns `Err` or the process dies
/// inside it, recovery finds either `state` or the previous state, never
/// a mix. On `Err` the caller must stop writing (fail-stop): a failed
/// sync is never retried.
///
/// Steps: write + sync the manifest; sync the directory; write + sync
/// `CURRENT.tmp`; rename it over `CURRENT`; sync the directory (the commit
/// point); remove the previous manifest (`previous`, when there is one).
/// Other leftovers (from a crash mid-update) are removed at the next open,
/// which lists the directory; the update itself never lists it.
pub async fn write_manifest<S: Storage>(
    storage: &S,
    state: &ManifestState,
    manifest_number: u64,
    previous: Option<u64>,
) -> Result<()> {
    let name = manifest_file_name(manifest_number);
    if storage.exists(&name).await? {
        return Err(Error::InvalidArgument(format!(
            "{name} already exists; a manifest number must be fresh"
        )));
    }
    let image = encode_manifest(state);
    // Assert in pairs: what goes to disk decodes to what was meant.
    let (decoded, manifest_checksum) = match decode_manifest(&image, &name) {
        Ok(d) => d,
        Err(e) => panic!("freshly encoded manifest does not decode: {e}"),
    };
    assert!(decoded == *state, "manifest encoding does not round-trip");

    let f = storage.create(&name).await?;
    f.write_at(0, &image).await?;
    f.sync().await?;
    // The manifest's name must be durable before CURRENT can point at it.
    storage.sync_dir().await?;

    let current = encode_current(&name, manifest_checksum);
    let tmp = storage.create(CURRENT_TMP_FILE_NAME).await?;
    tmp.write_at(0, &current).await?;
    // CURRENT's bytes must be durable before the rename makes them CURRENT.
    tmp.sync().await?;
    storage.rename(CURRENT_TMP_FILE_NAME, CURRENT_FILE_NAME).await?;
    // The commit point: until the rename is durable, a crash recovers the old state.
    storage.sync_dir().await?;

    if let Some(prev) = previous.filter(|&p| p != manifest_number) {
        let old = manifest_file_name(prev);
        if storage.exists(&old).await? {
            storage.remove(&old).await?;
        }
    }
    Ok(())
}

/// Reads the state `CURRENT` points at: `None` for a directory without
/// `CURRENT` (a fresh engine, or one that crashed before its first
/// manifest update committed). Leftover `CURRENT.tmp` and unreferenced
/// manifests are ignored. A damaged `CURRENT` or manifest, or one whose
/// checksum differs from the one `CURRENT` records, is an error: recovery
/// never falls back to an older manifest.
pub async fn read_current<S: Storage>(storage: &S) -> Result<Option<(u64, ManifestState)>> {
    if !storage.exists(CURRENT_FILE_NAME).await? {
        return Ok(None);
    }
    let current = read_whole(storage, CURRENT_FILE_NAME, 4096).await?;
    let (number, expected_checksum) = decode_current(&current)?;
    let name = manifest_file_name(number);
    if !storage.exists(&name).await? {
        return Err(Error::corruption(
            CURRENT_FILE_NAME,
            HEADER_SIZE as u64,
            format!("names {name}, which does not exist"),
        ));
    }
    let bytes = read_whole(
        storage,
        &name,
        (HEADER_SIZE + MANIFEST_PAYLOAD_BYTES_MAX + CHECKSUM_SIZE) as u64,
    )
    .await?;
    let (state, actual_checksum) = decode_manifest(&bytes, &name)?;
    if actual_checksum != expected_checksum {
        return Err(Error::ChecksumMismatch {
            file: name,
            offset: 0,
            expected: expected_checksum,
            actual: actual_checksum,
        });
    }
    Ok(Some((number, state)))
}

/// Reads up to `limit` bytes of `name` (the whole file if it is shorter).
async fn read_whole<S: Storage>(storage: &S, name: &str, limit: u64) -> Result<Vec<u8>> {
    let f = storage.open(name).await?;
    let size = f.size().await?.min(align_up(limit as usize) as u64);
    f.read_at(0, size as usize).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{make_internal_key, ValueKind};
    use crate::storage::mem::{MemStorage, SplitMix64};
    use futures_lite::future::block_on;

    fn table(number: u64, lo: &str, hi: &str, sseq: u64, lseq: u64) -> FileMeta {
        FileMeta {
            number,
            size: 4096 * number,
            smallest: make_internal_key(lo.as_bytes(), lseq, ValueKind::Put),
            largest: make_internal_key(hi.as_bytes(), sseq, ValueKind::Delete),
            smallest_seq: sseq,
            largest_seq: lseq,
            entries: 100 + number,
            point_tombstones: number,
            range_tombstones: 1,
        }
    }

    /// A state whose contents depend on `generation`.
    fn state(generation: u64) -> ManifestState {
        let g = generation;
        ManifestState {
            next_file_number: 100 + g,
            last_seq: 1000 + g,
            keyspaces: vec![
                KeyspaceManifest {
                    id: 0,
                    name: "default".into(),
                    log_number: 7 + g,
                    levels: vec![
                        vec![table(20 + g, "a", "z", 500, 600 + g), table(10, "b", "c", 400, 450)],
                        vec![
                            table(5, "a", "f", 1, 10),
                            table(6, "f", "k", 0, 0),
                            table(7, "m", "q", 1, 10),
                        ],
                        vec![],
                        vec![table(3, "a", "zzzz", 0, 0)],
                    ],
                },
                KeyspaceManifest {
                    id: 9,
                    name: "sessions".into(),
                    log_number: 9,
                    levels: vec![vec![]; 3],
                },
            ],
        }
    }

    #[test]
    fn file_names() {
        assert_eq!(manifest_file_name(7), "MANIFEST-000007");
        assert_eq!(manifest_file_name(12345678), "MANIFEST-12345678");
        assert_eq!(parse_manifest_file_name("MANIFEST-000007"), Some(7));
        assert_eq!(parse_manifest_file_name("MANIFEST-12345678"), Some(12345678));
        for bad in [
            "MANIFEST-7",
            "MANIFEST-0000007",
            "MANIFEST-00000x",
            "MANIFEST-",
            "CURRENT",
            "CURRENT.tmp",
            "000007.sst",
            "MANIFEST-+00007",
        ] {
            assert!(!is_manifest_file_name(bad), "{bad}");
        }
    }

    #[test]
    fn encode_decode_round_trip() {
        for s in [ManifestState::default(), state(0), state(5)] {
            let image = encode_manifest(&s);
            assert_eq!(image.len() % 4096, 0);
            let (decoded, sum) = decode_manifest(&image, "M").unwrap();
            assert_eq!(decoded, s);
            let body_len = HEADER_SIZE + u32::from_le_bytes([image[12], image[13], image[14], image[15]]) as usize;
            let stored = u64::from_le_bytes(image[body_len..body_len + 8].try_into().unwrap_or([0; 8]));
            assert_eq!(sum, stored, "the checksum CURRENT records is the manifest's trailer");
        }
    }

    #[test]
    #[should_panic(expected = "invalid manifest")]
    fn encode_refuses_invalid_state() {
        let mut s = state(0);
        s.next_file_number = 3;
        encode_manifest(&s);
    }

    #[test]
    fn write_then_read() {
        block_on(async {
            let s = MemStorage::new();
            assert_eq!(read_current(&s).await.unwrap(), None);
            write_manifest(&s, &state(0), 1, None).await.unwrap();
            assert_eq!(read_current(&s).await.unwrap(), Some((1, state(0))));
            write_manifest(&s, &state(1), 2, Some(1)).await.unwrap();
            assert_eq!(read_current(&s).await.unwrap(), Some((2, state(1))));
            assert!(
                !s.file_names().contains(&"MANIFEST-000001".to_string()),
                "old manifest removed"
            );
            assert!(matches!(
                write_manifest(&s, &state(2), 2, Some(2)).await,
                Err(Error::InvalidArgument(_))
            ));
            assert_eq!(read_current(&s.crash(None)).await.unwrap(), Some((2, state(1))));
        });
    }

    #[test]
    fn leftovers_are_ignored() {
        block_on(async {
            let s = MemStorage::new();
            write_manifest(&s, &state(0), 1, None).await.unwrap();
            let junk = s.create("CURRENT.tmp").await.unwrap();
            junk.write_at(0, &[0xab; 4096]).await.unwrap();
            let newer = s.create("MANIFEST-000009").await.unwrap();
            newer.write_at(0, &encode_manifest(&state(3))).await.unwrap();
            assert_eq!(read_current(&s).await.unwrap(), Some((1, state(0))));
            write_manifest(&s, &state(4), 10, Some(1)).await.unwrap();
            let manifests: Vec<String> = s
                .file_names()
                .into_iter()
                .filter(|n| is_manifest_file_name(n))
                .collect();
            // The previous manifest goes; the crash leftover stays until the
            // next open sweeps files no manifest references.
            assert_eq!(
                manifests,
                vec!["MANIFEST-000009".to_string(), "MANIFEST-000010".to_string()]
            );
            assert_eq!(read_current(&s).await.unwrap(), Some((10, state(4))));
        });
    }

    fn expect_err(s: &MemStorage) -> Error {
        match block_on(read_current(s)) {
            Ok(v) => panic!("expected an error, read {v:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn corruption_is_reported_never_papered_over() {
        block_on(async {
            let s = MemStorage::new();
            write_manifest(&s, &state(0), 1, None).await.unwrap();
            write_manifest(&s, &state(1), 2, Some(1)).await.unwrap();
            let good = s.file_bytes("MANIFEST-000002").unwrap();

            // A flipped payload byte.
            s.poke("MANIFEST-000002", 40, &[good[40] ^ 1]);
            let e = expect_err(&s);
            assert!(
                matches!(&e, Error::ChecksumMismatch { file, .. } if file == "MANIFEST-000002"),
                "{e}"
            );
            s.poke("MANIFEST-000002", 40, &[good[40]]);

            // An unknown format version.
            s.poke("MANIFEST-000002", 8, &2u32.to_le_bytes());
            let e = expect_err(&s);
            assert!(matches!(&e, Error::UnsupportedVersion { found: 2, .. }), "{e}");
            s.poke("MANIFEST-000002", 8, &1u32.to_le_bytes());
            assert_eq!(read_current(&s).await.unwrap(), Some((2, state(1))));

            // A damaged CURRENT.
            let cur = s.file_bytes("CURRENT").unwrap();
            s.poke("CURRENT", 20, &[cur[20] ^ 0x40]);
            let e = expect_err(&s);
            assert!(e.is_corruption(), "{e}");
            assert!(e.to_string().contains("CURRENT"), "{e}");
            s.poke("CURRENT", 20, &[cur[20]]);

            // The manifest replaced by another valid one: CURRENT's checksum catches it.
            let other = encode_manifest(&state(7));
            s.poke("MANIFEST-000002", 0, &other[..4096.min(other.len())]);
            let e = expect_err(&s);
            assert!(
                matches!(&e, Error::ChecksumMismatch { file, .. } if file == "MANIFEST-000002"),
                "{e}"
            );

            // CURRENT naming a missing manifest.
            s.remove("MANIFEST-000002").await.unwrap();
            let e = expect_err(&s);
            assert!(matches!(&e, Error::Corruption { file, .. } if file == "CURRENT"), "{e}");
        });
    }

    /// Runs an update from `state(0)` (number 1) to `state(1)` (number 2),
    /// with `arm` injecting a fault; then checks every crash image.
    fn crash_at_every_step(arm: impl Fn(&MemStorage, u64)) -> (usize, usize) {
        let (mut oks, mut errs) = (0, 0);
        for n in 0..16 {
            block_on(async {
                let s = MemStorage::new();
                write_manifest(&s, &state(0), 1, None).await.unwrap();
                arm(&s, n);
                let res = write_manifest(&s, &state(1), 2, Some(1)).await;
                match res {
                    Ok(()) => oks += 1,
                    Err(_) => errs += 1,
                }
                s.heal();
                let mut images = vec![s.clone(), s.crash(None)];
                images.extend((0..8).map(|seed| s.crash(Some(seed * 7919 + n))));
                for (i, image) in images.iter().enumerate() {
                    let got = read_current(image)
                        .await
                        .unwrap_or_else(|e| panic!("step {n}, image {i}: recovery failed: {e}"));
                    let got = got.unwrap_or_else(|| panic!("step {n}, image {i}: state lost"));
                    if res.is_ok() {
                        assert_eq!(got, (2, state(1)), "step {n}, image {i}: committed update lost");
                    } else {
                        assert!(
                            got == (1, state(0)) || got == (2, state(1)),
                            "step {n}, image {i}: {got:?}"
                        );
                    }
                }
            });
        }
        (oks, errs)
    }

    #[test]
    fn crash_during_update_recovers_old_or_new_state() {
        let (oks, errs) = crash_at_every_step(|s, n| s.fail_writes_after(n));
        assert!(oks > 0 && errs >= 4, "writes: {oks} ok, {errs} failed");
        let (oks, errs) = crash_at_every_step(|s, n| s.fail_syncs_after(n));
        assert!(oks > 0 && errs >= 4, "syncs: {oks} ok, {errs} failed");
    }

    #[test]
    fn crash_during_first_update_recovers_nothing_or_new_state() {
        for n in 0..10 {
            block_on(async {
                let s = MemStorage::new();
                s.fail_syncs_after(n);
                let res = write_manifest(&s, &state(0), 1, None).await;
                s.heal();
                for seed in [None, Some(n), Some(n + 100)] {
                    let got = read_current(&s.crash(seed)).await.unwrap();
                    assert!(got.is_none() || got == Some((1, state(0))), "step {n}: {got:?}");
                    if res.is_ok() {
                        assert_eq!(got, Some((1, state(0))));
                    }
                }
            });
        }
    }

    #[test]
    fn hostile_bytes_never_panic() {
        let mut rng = SplitMix64::new(0x5eed);
        let good = encode_manifest(&state(3));
        let body_len = HEADER_SIZE + u32::from_le_bytes(good[12..16].try_into().unwrap_or([0; 4])) as usize;
        for round in 0..20_000u64 {
            let mut bytes = good.clone();
            match round % 4 {
                0 => {
                    // Pure noise, sometimes behind a valid header.
                    let len = (rng.next_u64() % 600) as usize;
                    bytes = (0..len).map(|_| rng.next_u64() as u8).collect();
                    if round % 8 == 0 && bytes.len() >= 12 {
                        bytes[..12].copy_from_slice(&good[..12]);
                    }
                }
                1 => {
                    // Bit flips and truncation.
                    for _ in 0..1 + rng.next_u64() % 4 {
                        let i = (rng.next_u64() as usize) % bytes.len();
                        bytes[i] ^= 1 << (rng.next_u64() % 8);
                    }
                    bytes.truncate((rng.next_u64() as usize) % (bytes.len() + 1));
                }
                _ => {
                    // Payload mutations with a recomputed checksum, so the
                    // payload parser and validator see them.
                    let mut body = good[..body_len].to_vec();
                    for _ in 0..1 + rng.next_u64() % 6 {
                        let i = HEADER_SIZE + (rng.next_u64() as usize) % (body_len - HEADER_SIZE);
                        body[i] = match rng.next_u64() % 3 {
                            0 => body[i] ^ (1 << (rng.next_u64() % 8)),
                            1 => 0xff,
                            _ => rng.next_u64() as u8,
                        };
                    }
                    let sum = checksum(&body);
                    body.extend_from_slice(&sum.to_le_bytes());
                    bytes = body;
                }
            }
            if let Ok((s, _)) = decode_manifest(&bytes, "fuzz") {
                // Whatever decodes is a valid state: it re-encodes and round-trips.
                let again = encode_manifest(&s);
                assert_eq!(decode_manifest(&again, "fuzz").map(|(d, _)| d).ok(), Some(s));
            }
            let _ = decode_current(&bytes);
        }
        let current = encode_current("MANIFEST-000001", 42);
        for round in 0..5_000u64 {
            let mut bytes = current.clone();
            let i = (rng.next_u64() as usize) % 64;
            bytes[i] ^= 1 << (round % 8);
            bytes.truncate((rng.next_u64() as usize) % (bytes.len() + 1));
            let _ = decode_current(&bytes);
        }
        assert_eq!(decode_current(&current).unwrap(), (1, 42));
    }
}
