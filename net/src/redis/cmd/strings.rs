//! String commands (LCS included). A string lives inline in its key's meta record
//! ([`Meta::string`]); its expiry is the meta's `expire_at_ms`.

use bytes::Bytes;
use lumadb_engine::batch::Edit;
use lumadb_engine::storage::Storage;

use crate::redis::db::{int_arg, not_float, not_integer, syntax_error, wrongtype, CmdError, CmdResult, Db};
use crate::redis::keys::{self, Kind, Meta};
use crate::redis::store::Tx;
use crate::resp::num::{format_long_double, parse_f64, parse_i64};
use crate::resp::{errors, Reply};

/// Longest string a command may build (Redis's default
/// `proto-max-bulk-len`), in bytes.
pub const STRING_BYTES_MAX: u64 = 512 * 1024 * 1024;

/// Runs `name` if it belongs to this family.
pub async fn run<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, name: &str, args: &[Bytes]) -> Option<CmdResult> {
    Some(match name {
        "get" => get(db, tx, args).await,
        "set" => set(db, tx, args).await,
        "setnx" => setnx(db, tx, args).await,
        "setex" => setex(db, tx, args, true).await,
        "psetex" => setex(db, tx, args, false).await,
        "getset" => getset(db, tx, args).await,
        "getdel" => getdel(db, tx, args).await,
        "getex" => getex(db, tx, args).await,
        "mget" => mget(db, tx, args).await,
        "mset" => mset(db, tx, args).await,
        "msetnx" => msetnx(db, tx, args).await,
        "incr" => incr_by(db, tx, &args[1], 1).await,
        "decr" => incr_by(db, tx, &args[1], -1).await,
        "incrby" => match int_arg(&args[2]) {
            Ok(delta) => incr_by(db, tx, &args[1], delta).await,
            Err(e) => Err(e),
        },
        "decrby" => match int_arg(&args[2]) {
            Ok(i64::MIN) => Err(CmdError::msg("ERR decrement would overflow")),
            Ok(delta) => incr_by(db, tx, &args[1], -delta).await,
            Err(e) => Err(e),
        },
        "incrbyfloat" => incrbyfloat(db, tx, args).await,
        "append" => append(db, tx, args).await,
        "strlen" => strlen(db, tx, args).await,
        "getrange" => getrange(db, tx, args).await,
        "setrange" => setrange(db, tx, args).await,
        "lcs" => lcs(db, tx, args).await,
        _ => return None,
    })
}

fn err(line: &'static str) -> CmdError {
    CmdError::msg(Bytes::from_static(line.as_bytes()))
}

fn bulk(value: Vec<u8>) -> Reply {
    Reply::Bulk(Bytes::from(value))
}

/// Whether a string of `len` bytes may be built.
fn check_string_len(len: u64) -> Result<(), CmdError> {
    if len > STRING_BYTES_MAX {
        Err(err(errors::STRING_TOO_LONG))
    } else {
        Ok(())
    }
}

/// The unit and base of an expiry option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExpireOpt {
    Ex,
    Px,
    ExAt,
    PxAt,
}

/// Options of SET (`is_set`) or GETEX, as Redis's
/// `parseExtendedStringArgumentsOrReply` accepts them.
#[derive(Debug, Default)]
struct StringOpts<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    expire: Option<(ExpireOpt, &'a [u8])>,
}

fn parse_string_opts(args: &[Bytes], is_set: bool) -> Result<StringOpts<'_>, CmdError> {
    let mut o = StringOpts::default();
    let mut j = 0;
    while j < args.len() {
        let opt = &args[j][..];
        let next = args.get(j + 1);
        let has_expire = o.expire.is_some();
        let expire_kind = o.expire.map(|(k, _)| k);
        let expire_is = |k: ExpireOpt| expire_kind.is_none() || expire_kind == Some(k);
        if opt.eq_ignore_ascii_case(b"nx") && !o.xx && is_set {
            o.nx = true;
        } else if opt.eq_ignore_ascii_case(b"xx") && !o.nx && is_set {
            o.xx = true;
        } else if opt.eq_ignore_ascii_case(b"get") && is_set {
            o.get = true;
        } else if opt.eq_ignore_ascii_case(b"keepttl") && !o.persist && !has_expire && is_set {
            o.keepttl = true;
        } else if opt.eq_ignore_ascii_case(b"persist") && !is_set && !has_expire && !o.keepttl {
            o.persist = true;
        } else if let (Some(kind), Some(value)) = (expire_opt(opt), next) {
            if o.keepttl || o.persist || !expire_is(kind) {
                return Err(syntax_error());
            }
            o.expire = Some((kind, &value[..]));
            j += 1;
        } else {
            return Err(syntax_error());
        }
        j += 1;
    }
    Ok(o)
}

fn expire_opt(opt: &[u8]) -> Option<ExpireOpt> {
    if opt.eq_ignore_ascii_case(b"ex") {
        Some(ExpireOpt::Ex)
    } else if opt.eq_ignore_ascii_case(b"px") {
        Some(ExpireOpt::Px)
    } else if opt.eq_ignore_ascii_case(b"exat") {
        Some(ExpireOpt::ExAt)
    } else if opt.eq_ignore_ascii_case(b"pxat") {
        Some(ExpireOpt::PxAt)
    } else {
        None
    }
}

/// The absolute expiry (Unix ms) an option asks for, validated as Redis's
/// `getExpireMillisecondsOrReply` does; `command` names the command in
/// the error.
fn expire_at_ms(now_ms: i64, kind: ExpireOpt, value: &[u8], command: &str) -> Result<i64, CmdError> {
    let invalid = || CmdError::msg(errors::invalid_expire_time(command));
    let mut ms = int_arg(value)?;
    let seconds = matches!(kind, ExpireOpt::Ex | ExpireOpt::ExAt);
    if ms <= 0 || (seconds && ms > i64::MAX / 1000) {
        return Err(invalid());
    }
    if seconds {
        ms *= 1000;
    }
    if matches!(kind, ExpireOpt::Ex | ExpireOpt::Px) {
        ms = ms.checked_add(now_ms).ok_or_else(invalid)?;
    }
    if ms <= 0 {
        return Err(invalid());
    }
    Ok(ms)
}

/// Writes a string value to a key that holds `old` (a string or nothing),
/// keeping its expiry.
fn store_string<S: Storage>(
    db: &Db<S>,
    tx: &mut Tx<'_, S>,
    key: &[u8],
    old: Option<Meta>,
    value: Vec<u8>,
) -> Result<(), CmdError> {
    match old {
        Some(mut m) => {
            debug_assert_eq!(m.kind, Kind::String);
            m.value = value;
            db.save_meta(tx, key, &m, true)?;
        }
        None => db.save_meta(tx, key, &Meta::string(value), false)?,
    }
    Ok(())
}

/// Replaces whatever `key` holds (`old`) with the string `new`; a `new`
/// expiry already past deletes the key instead.
fn replace_string<S: Storage>(
    db: &Db<S>,
    tx: &mut Tx<'_, S>,
    key: &[u8],
    old: Option<&Meta>,
    new: &Meta,
) -> Result<(), CmdError> {
    if new.expire_at_ms != 0 && new.expire_at_ms <= db.now_in(tx) {
        if let Some(old) = old {
            db.delete_key(tx, key, old)?;
        }
        return Ok(());
    }
    db.replace(tx, key, old, new)?;
    Ok(())
}

async fn string_meta_read<S: Storage>(db: &Db<S>, tx: &Tx<'_, S>, key: &[u8]) -> Result<Option<Meta>, CmdError> {
    Db::<S>::typed(db.meta(tx, key).await?, Kind::String)
}

async fn string_meta_write<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, key: &[u8]) -> Result<Option<Meta>, CmdError> {
    Db::<S>::typed(db.meta_for_write(tx, key).await?, Kind::String)
}

async fn get<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    Ok(match string_meta_read(db, tx, &args[1]).await? {
        Some(m) => bulk(m.value),
        None => Reply::Null,
    })
}

async fn set<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    let opts = parse_string_opts(&args[3..], true)?;
    let expire = match opts.expire {
        Some((kind, value)) => Some(expire_at_ms(db.now_in_i64(tx), kind, value, "set")?),
        None => None,
    };
    let old = db.meta_for_write(tx, key).await?;
    let old_reply = if opts.get {
        match &old {
            Some(m) if m.kind != Kind::String => return Err(wrongtype()),
            Some(m) => bulk(m.value.clone()),
            None => Reply::Null,
        }
    } else {
        Reply::ok()
    };
    if (opts.nx && old.is_some()) || (opts.xx && old.is_none()) {
        return Ok(if opts.get { old_reply } else { Reply::Null });
    }
    let mut new = Meta::string(args[2].to_vec());
    if opts.keepttl {
        new.expire_at_ms = old.as_ref().map_or(0, |m| m.expire_at_ms);
    }
    if let Some(at) = expire {
        // Positive by construction.
        new.expire_at_ms = at as u64;
    }
    replace_string(db, tx, key, old.as_ref(), &new)?;
    Ok(old_reply)
}

async fn setnx<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    if db.meta_for_write(tx, key).await?.is_some() {
        return Ok(Reply::Int(0));
    }
    db.save_meta(tx, key, &Meta::string(args[2].to_vec()), false)?;
    Ok(Reply::Int(1))
}

/// SETEX (`seconds`) and PSETEX.
async fn setex<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes], seconds: bool) -> CmdResult {
    let key = &args[1][..];
    let (kind, command) = if seconds {
        (ExpireOpt::Ex, "setex")
    } else {
        (ExpireOpt::Px, "psetex")
    };
    let at = expire_at_ms(db.now_in_i64(tx), kind, &args[2], command)?;
    let old = db.meta_for_write(tx, key).await?;
    let mut new = Meta::string(args[3].to_vec());
    new.expire_at_ms = at as u64;
    replace_string(db, tx, key, old.as_ref(), &new)?;
    Ok(Reply::ok())
}

async fn getset<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    let old = string_meta_write(db, tx, key).await?;
    db.replace(tx, key, old.as_ref(), &Meta::string(args[2].to_vec()))?;
    Ok(match old {
        Some(m) => bulk(m.value),
        None => Reply::Null,
    })
}

async fn getdel<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    match string_meta_write(db, tx, key).await? {
        Some(m) => {
            db.delete_key(tx, key, &m)?;
            Ok(bulk(m.value))
        }
        None => Ok(Reply::Null),
    }
}

async fn getex<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    let opts = parse_string_opts(&args[2..], false)?;
    let Some(mut m) = string_meta_write(db, tx, key).await? else {
        return Ok(Reply::Null);
    };
    let now = db.now_in_i64(tx);
    let expire = match opts.expire {
        Some((kind, value)) => Some(expire_at_ms(now, kind, value, "getex")?),
        None => None,
    };
    let reply = bulk(m.value.clone());
    match expire {
        Some(at) if at <= now => db.delete_key(tx, key, &m)?,
        Some(at) => db.set_expire(tx, key, &mut m, at as u64)?,
        None if opts.persist => db.set_expire(tx, key, &mut m, 0)?,
        None => {}
    }
    Ok(reply)
}

async fn mget<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let mut out = Vec::with_capacity(args.len() - 1);
    for key in &args[1..] {
        out.push(match db.meta(tx, key).await? {
            Some(m) if m.kind == Kind::String => bulk(m.value),
            _ => Reply::Null,
        });
    }
    Ok(Reply::Array(out))
}

async fn mset<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(CmdError::msg(errors::wrong_arity("mset")));
    }
    for pair in args[1..].chunks_exact(2) {
        let old = db.meta_for_write(tx, &pair[0]).await?;
        db.replace(tx, &pair[0], old.as_ref(), &Meta::string(pair[1].to_vec()))?;
    }
    Ok(Reply::ok())
}

async fn msetnx<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(CmdError::msg(errors::wrong_arity("msetnx")));
    }
    for pair in args[1..].chunks_exact(2) {
        if db.meta_for_write(tx, &pair[0]).await?.is_some() {
            return Ok(Reply::Int(0));
        }
    }
    for pair in args[1..].chunks_exact(2) {
        let old = db.meta_for_write(tx, &pair[0]).await?;
        db.replace(tx, &pair[0], old.as_ref(), &Meta::string(pair[1].to_vec()))?;
    }
    Ok(Reply::Int(1))
}

async fn incr_by<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, key: &[u8], delta: i64) -> CmdResult {
    let old = string_meta_write(db, tx, key).await?;
    let current = match &old {
        Some(m) => parse_i64(&m.value).ok_or_else(not_integer)?,
        None => 0,
    };
    let value = current.checked_add(delta).ok_or_else(|| err(errors::OVERFLOW))?;
    store_string(db, tx, key, old, itoa::Buffer::new().format(value).as_bytes().to_vec())?;
    Ok(Reply::Int(value))
}

async fn incrbyfloat<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    let old = string_meta_write(db, tx, key).await?;
    let current = match &old {
        Some(m) => parse_f64(&m.value).ok_or_else(not_float)?,
        None => 0.0,
    };
    let incr = parse_f64(&args[2]).ok_or_else(not_float)?;
    let value = current + incr;
    if !value.is_finite() {
        return Err(err(errors::INCR_NAN_OR_INF));
    }
    let mut text = Vec::with_capacity(24);
    format_long_double(value, &mut text);
    store_string(db, tx, key, old, text.clone())?;
    Ok(bulk(text))
}

/// Edits the string at `key` where it sits in memory, without reading or
/// rewriting the rest of it ([`Tx::edit`]): `edit` gets the string's
/// length and gives the change to its bytes and the length after it, or
/// `None` to decline. `None` when the caller must take the whole-value
/// path: the key is not a live string in the engine's active memtable,
/// `edit` declined, or the change cannot go in as one. A growing string
/// then costs what it adds, not its size.
fn edit_in_memory<'e, S: Storage>(
    db: &Db<S>,
    tx: &mut Tx<'_, S>,
    key: &[u8],
    edit: impl FnOnce(usize) -> Result<Option<(Edit<'e>, usize)>, CmdError>,
) -> Result<Option<usize>, CmdError> {
    let mk = keys::meta_key(key);
    let Some((expire_at_ms, len)) = db.store.peek(&mk, Meta::peek_string).flatten() else {
        return Ok(None);
    };
    if expire_at_ms != 0 && expire_at_ms <= db.now_in(tx) {
        return Ok(None);
    }
    let Some((change, new_len)) = edit(len)? else {
        return Ok(None);
    };
    let change = Edit {
        at: change.at + if change.from_end { 0 } else { Meta::STRING_OFFSET },
        ..change
    };
    Ok(tx.edit(&mk, change)?.then_some(new_len))
}

async fn append<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    let tail = &args[2][..];
    let grown = edit_in_memory(db, tx, key, |len| {
        check_string_len(len as u64 + tail.len() as u64)?;
        Ok(Some((Edit::append(tail), len + tail.len())))
    })?;
    if let Some(len) = grown {
        return Ok(Reply::Int(len as i64));
    }
    let old = string_meta_write(db, tx, key).await?;
    let mut value = old.as_ref().map_or_else(Vec::new, |m| m.value.clone());
    check_string_len(value.len() as u64 + args[2].len() as u64)?;
    value.extend_from_slice(&args[2]);
    let len = value.len();
    store_string(db, tx, key, old, value)?;
    Ok(Reply::Int(len as i64))
}

async fn strlen<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let len = string_meta_read(db, tx, &args[1]).await?.map_or(0, |m| m.value.len());
    Ok(Reply::Int(len as i64))
}

async fn getrange<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let mut start = int_arg(&args[2])?;
    let mut end = int_arg(&args[3])?;
    let empty = || Reply::Bulk(Bytes::new());
    let Some(m) = string_meta_read(db, tx, &args[1]).await? else {
        return Ok(empty());
    };
    let len = m.value.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Ok(empty());
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return Ok(empty());
    }
    Ok(Reply::Bulk(Bytes::copy_from_slice(
        &m.value[start as usize..=end as usize],
    )))
}

async fn setrange<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    let key = &args[1][..];
    let offset = int_arg(&args[2])?;
    if offset < 0 {
        return Err(err(errors::OFFSET_OUT_OF_RANGE));
    }
    let patch = &args[3][..];
    let old = string_meta_write(db, tx, key).await?;
    let old_len = old.as_ref().map_or(0, |m| m.value.len());
    if patch.is_empty() {
        return Ok(Reply::Int(old_len as i64));
    }
    // offset >= 0, so the conversion is exact.
    let offset = offset as u64;
    check_string_len(offset.saturating_add(patch.len() as u64))?;
    let offset = offset as usize;
    // In place when the patch starts inside the string (past its end, the
    // zeros before it are written whole).
    let patched = edit_in_memory(db, tx, key, |len| {
        Ok((offset <= len).then(|| (Edit::overwrite(offset, patch), len.max(offset + patch.len()))))
    })?;
    if let Some(len) = patched {
        return Ok(Reply::Int(len as i64));
    }
    let mut value = old.as_ref().map_or_else(Vec::new, |m| m.value.clone());
    let end = offset + patch.len();
    if value.len() < end {
        value.resize(end, 0);
    }
    value[offset..end].copy_from_slice(patch);
    let len = value.len();
    store_string(db, tx, key, old, value)?;
    Ok(Reply::Int(len as i64))
}

/// LCS options.
#[derive(Default)]
struct LcsOpts {
    len: bool,
    idx: bool,
    with_match_len: bool,
    min_match_len: u64,
}

fn parse_lcs_opts(args: &[Bytes]) -> Result<LcsOpts, CmdError> {
    let mut o = LcsOpts::default();
    let mut j = 3;
    while j < args.len() {
        let a = &args[j];
        if a.eq_ignore_ascii_case(b"idx") {
            o.idx = true;
        } else if a.eq_ignore_ascii_case(b"len") {
            o.len = true;
        } else if a.eq_ignore_ascii_case(b"withmatchlen") {
            o.with_match_len = true;
        } else if a.eq_ignore_ascii_case(b"minmatchlen") && j + 1 < args.len() {
            o.min_match_len = u64::try_from(int_arg(&args[j + 1])?).unwrap_or(0);
            j += 1;
        } else {
            return Err(syntax_error());
        }
        j += 1;
    }
    if o.len && o.idx {
        return Err(err("ERR If you want both the length and indexes, please just use IDX."));
    }
    Ok(o)
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN n] [WITHMATCHLEN]: Redis's
/// dynamic-programming table, limited as Redis limits it (the table may
/// not exceed `proto-max-bulk-len` bytes).
async fn lcs<S: Storage>(db: &Db<S>, tx: &mut Tx<'_, S>, args: &[Bytes]) -> CmdResult {
    const NOT_STRINGS: &str = "ERR The specified keys must contain string values";
    let a = db.meta(tx, &args[1]).await?;
    let b = db.meta(tx, &args[2]).await?;
    if a.as_ref().is_some_and(|m| m.kind != Kind::String) || b.as_ref().is_some_and(|m| m.kind != Kind::String) {
        return Err(err(NOT_STRINGS));
    }
    let (a, b) = (
        a.map(|m| m.value).unwrap_or_default(),
        b.map(|m| m.value).unwrap_or_default(),
    );
    let opts = parse_lcs_opts(args)?;
    lcs_reply(&a, &b, &opts)
}

fn lcs_reply(a: &[u8], b: &[u8], opts: &LcsOpts) -> CmdResult {
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1).saturating_mul(blen as u64 + 1);
    if cells.saturating_mul(4) > STRING_BYTES_MAX {
        return Err(err(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    let cells = cells as usize;
    let mut table: Vec<u32> = Vec::new();
    if table.try_reserve_exact(cells).is_err() {
        return Err(err(
            "ERR Insufficient memory, failed allocating transient memory for LCS",
        ));
    }
    table.resize(cells, 0);
    let at = |i: usize, j: usize| j + i * (blen + 1);
    for i in 1..=alen {
        for j in 1..=blen {
            table[at(i, j)] = if a[i - 1] == b[j - 1] {
                table[at(i - 1, j - 1)] + 1
            } else {
                table[at(i - 1, j)].max(table[at(i, j - 1)])
            };
        }
    }
    let total = table[at(alen, blen)];
    if opts.len && !opts.idx {
        return Ok(Reply::Int(i64::from(total)));
    }
    // Walk back from the end, building the string backwards and emitting
    // each maximal run of matches as a range (Redis's order: last first).
    let mut result = vec![0u8; total as usize];
    let mut left = total as usize;
    let mut matches = Vec::new();
    let (mut i, mut j) = (alen, blen);
    // `None`: no range open.
    let mut range: Option<(usize, usize, usize, usize)> = None;
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            result[left - 1] = a[i - 1];
            match &mut range {
                None => range = Some((i - 1, i - 1, j - 1, j - 1)),
                Some((a_start, _, b_start, _)) if *a_start == i && *b_start == j => {
                    *a_start -= 1;
                    *b_start -= 1;
                }
                Some(_) => emit = true,
            }
            if range.is_some_and(|(a_start, _, b_start, _)| a_start == 0 || b_start == 0) {
                emit = true;
            }
            left -= 1;
            i -= 1;
            j -= 1;
        } else {
            if table[at(i - 1, j)] > table[at(i, j - 1)] {
                i -= 1;
            } else {
                j -= 1;
            }
            if range.is_some() {
                emit = true;
            }
        }
        if emit {
            if let Some((a_start, a_end, b_start, b_end)) = range.take() {
                let match_len = (a_end - a_start + 1) as u64;
                if opts.min_match_len == 0 || match_len >= opts.min_match_len {
                    let mut m = vec![
                        Reply::Array(vec![Reply::Int(a_start as i64), Reply::Int(a_end as i64)]),
                        Reply::Array(vec![Reply::Int(b_start as i64), Reply::Int(b_end as i64)]),
                    ];
                    if opts.with_match_len {
                        m.push(Reply::Int(match_len as i64));
                    }
                    matches.push(Reply::Array(m));
                }
            }
        }
    }
    if opts.idx {
        return Ok(Reply::Map(vec![
            (Reply::bulk("matches"), Reply::Array(matches)),
            (Reply::bulk("len"), Reply::Int(i64::from(total))),
        ]));
    }
    Ok(bulk(result))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::redis::keys;
    use crate::redis::testkit::{bulk, bulks, err, TestDb};

    const T0: u64 = 1_700_000_000_000;
    const WRONGTYPE: &str = errors::WRONGTYPE;

    /// Creates a hash `key` with `fields` (field = value) directly through
    /// the layout helpers, for wrong-type checks.
    pub(crate) fn make_hash(t: &TestDb, key: &str, fields: &[&str]) {
        let db = t.db.clone();
        t.run(async move {
            let mut tx = db.store.tx();
            let mut m = db.new_collection(&mut tx, Kind::Hash).expect("version");
            for f in fields {
                tx.put(
                    &keys::element_key(key.as_bytes(), m.version, keys::TAG_HASH, f.as_bytes()),
                    f.as_bytes(),
                )
                .expect("put");
                m.count += 1;
            }
            db.save_meta(&mut tx, key.as_bytes(), &m, false).expect("save");
            tx.commit().wait().await.expect("durable");
        });
    }

    fn new_db() -> TestDb {
        let t = TestDb::new();
        t.set_clock_ms(T0);
        t
    }

    fn int(n: i64) -> Reply {
        Reply::Int(n)
    }

    fn ok() -> Reply {
        Reply::ok()
    }

    #[test]
    fn get_set_basic() {
        let t = new_db();
        assert_eq!(t.cmd(&["GET", "k"]), Reply::Null);
        assert_eq!(t.cmd(&["SET", "k", "v"]), ok());
        assert_eq!(t.cmd(&["GET", "k"]), bulk("v"));
        assert_eq!(t.cmd(&["SET", "k", ""]), ok());
        assert_eq!(t.cmd(&["GET", "k"]), bulk(""));
        make_hash(&t, "h", &["f"]);
        assert_eq!(t.cmd(&["GET", "h"]), err(WRONGTYPE));
        // SET replaces a key of another type.
        assert_eq!(t.cmd(&["SET", "h", "x"]), ok());
        assert_eq!(t.cmd(&["GET", "h"]), bulk("x"));
        assert_eq!(t.db.key_count(), 2);
    }

    #[test]
    fn set_options() {
        let t = new_db();
        assert_eq!(t.cmd(&["SET", "k", "v", "NX", "GET"]), Reply::Null);
        assert_eq!(t.cmd(&["SET", "k", "v2", "nx", "get"]), bulk("v"));
        assert_eq!(t.cmd(&["SET", "k", "v2", "NX"]), Reply::Null);
        assert_eq!(t.cmd(&["SET", "nk", "v", "XX"]), Reply::Null);
        assert_eq!(t.cmd(&["GET", "nk"]), Reply::Null);
        assert_eq!(t.cmd(&["SET", "k", "v3", "XX"]), ok());
        assert_eq!(t.cmd(&["SET", "k", "v4", "GET", "GET"]), bulk("v3"));
        assert_eq!(t.cmd(&["SET", "k", "v", "NX", "NX"]), Reply::Null);
        for bad in [
            &["SET", "k", "v", "XX", "NX"][..],
            &["SET", "k", "v", "NX", "XX"],
            &["SET", "k", "v", "EX", "10", "PX", "10"],
            &["SET", "k", "v", "KEEPTTL", "EX", "10"],
            &["SET", "k", "v", "EX", "10", "KEEPTTL"],
            &["SET", "k", "v", "EX"],
            &["SET", "k", "v", "PERSIST"],
            &["SET", "k", "v", "FOO"],
            &["SET", "k", "v", "EXAT", "10", "PXAT", "10"],
        ] {
            assert_eq!(t.cmd(bad), err("ERR syntax error"), "{bad:?}");
        }
        assert_eq!(
            t.cmd(&["SET", "k", "v", "EX", "0"]),
            err("ERR invalid expire time in 'set' command")
        );
        assert_eq!(
            t.cmd(&["SET", "k", "v", "PX", "-1"]),
            err("ERR invalid expire time in 'set' command")
        );
        assert_eq!(
            t.cmd(&["SET", "k", "v", "EX", "9223372036854775"]),
            err("ERR invalid expire time in 'set' command")
        );
        assert_eq!(
            t.cmd(&["SET", "k", "v", "PX", "9223372036854775807"]),
            err("ERR invalid expire time in 'set' command")
        );
        assert_eq!(
            t.cmd(&["SET", "k", "v", "EX", "abc"]),
            err("ERR value is not an integer or out of range")
        );
        make_hash(&t, "h", &["f"]);
        assert_eq!(t.cmd(&["SET", "h", "v", "GET"]), err(WRONGTYPE));
        // The expiry is checked before the type.
        assert_eq!(
            t.cmd(&["SET", "h", "v", "EX", "0", "GET"]),
            err("ERR invalid expire time in 'set' command")
        );
        assert_eq!(t.cmd(&["TYPE", "h"]), Reply::Simple(Bytes::from_static(b"hash")));
    }

    #[test]
    fn set_expiry_options() {
        let t = new_db();
        assert_eq!(t.cmd(&["SET", "k", "v", "EX", "10"]), ok());
        assert_eq!(t.cmd(&["PTTL", "k"]), int(10_000));
        assert_eq!(t.cmd(&["SET", "k", "v", "PX", "1500", "PX", "2500"]), ok());
        assert_eq!(t.cmd(&["PTTL", "k"]), int(2500));
        assert_eq!(t.cmd(&["SET", "k", "v", "KEEPTTL"]), ok());
        assert_eq!(t.cmd(&["PTTL", "k"]), int(2500));
        assert_eq!(t.cmd(&["SET", "k", "v"]), ok());
        assert_eq!(t.cmd(&["PTTL", "k"]), int(-1));
        let at = (T0 / 1000 + 100).to_string();
        assert_eq!(t.cmd(&["SET", "k", "v", "EXAT", &at]), ok());
        assert_eq!(t.cmd(&["TTL", "k"]), int(100));
        let at = (T0 + 42).to_string();
        assert_eq!(t.cmd(&["SET", "k", "v", "PXAT", &at]), ok());
        assert_eq!(t.cmd(&["PTTL", "k"]), int(42));
        assert_eq!(t.db.expires_count(), 1);
        // A time already past deletes the key.
        assert_eq!(t.cmd(&["SET", "k", "old"]), ok());
        assert_eq!(t.cmd(&["SET", "k", "v", "PXAT", "1", "GET"]), bulk("old"));
        assert_eq!(t.cmd(&["EXISTS", "k"]), int(0));
        assert_eq!(t.db.key_count(), 0);
        // Expiry passes.
        assert_eq!(t.cmd(&["SET", "k", "v", "PX", "100"]), ok());
        t.set_clock_ms(T0 + 100);
        assert_eq!(t.cmd(&["GET", "k"]), Reply::Null);
        assert_eq!(t.cmd(&["SET", "k", "v", "XX"]), Reply::Null);
        assert_eq!(t.cmd(&["SET", "k", "v", "NX"]), ok());
        assert_eq!(t.cmd(&["TTL", "k"]), int(-1));
        assert_eq!(t.db.expires_count(), 0);
    }

    #[test]
    fn setnx_setex_psetex() {
        let t = new_db();
        assert_eq!(t.cmd(&["SETNX", "k", "a"]), int(1));
        assert_eq!(t.cmd(&["SETNX", "k", "b"]), int(0));
        assert_eq!(t.cmd(&["GET", "k"]), bulk("a"));
        assert_eq!(t.cmd(&["SETEX", "k", "10", "b"]), ok());
        assert_eq!(t.cmd(&["GET", "k"]), bulk("b"));
        assert_eq!(t.cmd(&["TTL", "k"]), int(10));
        assert_eq!(t.cmd(&["PSETEX", "k", "1500", "c"]), ok());
        assert_eq!(t.cmd(&["PTTL", "k"]), int(1500));
        assert_eq!(
            t.cmd(&["SETEX", "k", "0", "v"]),
            err("ERR invalid expire time in 'setex' command")
        );
        assert_eq!(
            t.cmd(&["PSETEX", "k", "-5", "v"]),
            err("ERR invalid expire time in 'psetex' command")
        );
        assert_eq!(
            t.cmd(&["SETEX", "k", "abc", "v"]),
            err("ERR value is not an integer or out of range")
        );
        make_hash(&t, "h", &["f"]);
        assert_eq!(t.cmd(&["SETNX", "h", "v"]), int(0));
        assert_eq!(t.cmd(&["SETEX", "h", "5", "v"]), ok());
        assert_eq!(t.cmd(&["GET", "h"]), bulk("v"));
    }

    #[test]
    fn getset_getdel() {
        let t = new_db();
        assert_eq!(t.cmd(&["GETSET", "k", "a"]), Reply::Null);
        assert_eq!(t.cmd(&["SET", "k", "a", "EX", "10"]), ok());
        assert_eq!(t.cmd(&["GETSET", "k", "b"]), bulk("a"));
        assert_eq!(t.cmd(&["TTL", "k"]), int(-1));
        assert_eq!(t.cmd(&["GETDEL", "k"]), bulk("b"));
        assert_eq!(t.cmd(&["GETDEL", "k"]), Reply::Null);
        assert_eq!(t.cmd(&["EXISTS", "k"]), int(0));
        make_hash(&t, "h", &["f"]);
        assert_eq!(t.cmd(&["GETSET", "h", "v"]), err(WRONGTYPE));
        assert_eq!(t.cmd(&["GETDEL", "h"]), err(WRONGTYPE));
        assert_eq!(t.db.key_count(), 1);
    }

    #[test]
    fn getex() {
        let t = new_db();
        assert_eq!(t.cmd(&["GETEX", "k"]), Reply::Null);
        // A missing key answers nil before the time is checked.
        assert_eq!(t.cmd(&["GETEX", "k", "EX", "0"]), Reply::Null);
        t.cmd(&["SET", "k", "v"]);
        assert_eq!(t.cmd(&["GETEX", "k", "EX", "10"]), bulk("v"));
        assert_eq!(t.cmd(&["TTL", "k"]), int(10));
        assert_eq!(t.cmd(&["GETEX", "k", "PX", "10", "PX", "20"]), bulk("v"));
        assert_eq!(t.cmd(&["PTTL", "k"]), int(20));
        assert_eq!(t.cmd(&["GETEX", "k"]), bulk("v"));
        assert_eq!(t.cmd(&["PTTL", "k"]), int(20));
        assert_eq!(t.cmd(&["GETEX", "k", "PERSIST"]), bulk("v"));
        assert_eq!(t.cmd(&["PTTL", "k"]), int(-1));
        let at = (T0 / 1000 + 7).to_string();
        assert_eq!(t.cmd(&["GETEX", "k", "EXAT", &at]), bulk("v"));
        assert_eq!(t.cmd(&["TTL", "k"]), int(7));
        assert_eq!(t.cmd(&["GETEX", "k", "PERSIST", "EX", "10"]), err("ERR syntax error"));
        assert_eq!(t.cmd(&["GETEX", "k", "EX", "10", "PERSIST"]), err("ERR syntax error"));
        assert_eq!(t.cmd(&["GETEX", "k", "NX"]), err("ERR syntax error"));
        assert_eq!(t.cmd(&["GETEX", "k", "KEEPTTL"]), err("ERR syntax error"));
        assert_eq!(
            t.cmd(&["GETEX", "k", "EX", "0"]),
            err("ERR invalid expire time in 'getex' command")
        );
        assert_eq!(t.cmd(&["GETEX", "k", "PXAT", "1"]), bulk("v"));
        assert_eq!(t.cmd(&["EXISTS", "k"]), int(0));
        assert_eq!(t.db.key_count(), 0);
        assert_eq!(t.db.expires_count(), 0);
        make_hash(&t, "h", &["f"]);
        assert_eq!(t.cmd(&["GETEX", "h", "EX", "0"]), err(WRONGTYPE));
    }

    #[test]
    fn mget_mset_msetnx() {
        let t = new_db();
        assert_eq!(t.cmd(&["MSET", "a", "1", "b", "2", "a", "3"]), ok());
        make_hash(&t, "h", &["f"]);
        assert_eq!(
            t.cmd(&["MGET", "a", "b", "h", "nope"]),
            Reply::Array(vec![bulk("3"), bulk("2"), Reply::Null, Reply::Null])
        );
        assert_eq!(
            t.cmd(&["MSET", "a", "1", "b"]),
            err("ERR wrong number of arguments for 'mset' command")
        );
        assert_eq!(
            t.cmd(&["MSETNX", "a", "1", "b"]),
            err("ERR wrong number of arguments for 'msetnx' command")
        );
        assert_eq!(t.cmd(&["MSETNX", "x", "1", "h", "2"]), int(0));
        assert_eq!(t.cmd(&["EXISTS", "x"]), int(0));
        assert_eq!(t.cmd(&["MSETNX", "x", "1", "y", "2", "x", "3"]), int(1));
        assert_eq!(t.cmd(&["MGET", "x", "y"]), bulks(&["3", "2"]));
        assert_eq!(t.cmd(&["MSET", "h", "s"]), ok());
        assert_eq!(t.cmd(&["GET", "h"]), bulk("s"));
        assert_eq!(t.db.key_count(), 5);
    }

    #[test]
    fn incr_decr() {
        let t = new_db();
        assert_eq!(t.cmd(&["INCR", "n"]), int(1));
        assert_eq!(t.cmd(&["INCRBY", "n", "10"]), int(11));
        assert_eq!(t.cmd(&["DECR", "n"]), int(10));
        assert_eq!(t.cmd(&["DECRBY", "n", "-5"]), int(15));
        assert_eq!(t.cmd(&["DECRBY", "m", "5"]), int(-5));
        assert_eq!(t.cmd(&["GET", "n"]), bulk("15"));
        assert_eq!(t.cmd(&["INCRBY", "n", "abc"]), err(errors::NOT_INTEGER));
        assert_eq!(
            t.cmd(&["DECRBY", "n", "-9223372036854775808"]),
            err("ERR decrement would overflow")
        );
        t.cmd(&["SET", "n", "9223372036854775807"]);
        assert_eq!(t.cmd(&["INCR", "n"]), err(errors::OVERFLOW));
        t.cmd(&["SET", "n", "-9223372036854775808"]);
        assert_eq!(t.cmd(&["DECR", "n"]), err(errors::OVERFLOW));
        for bad in ["abc", "1 ", "012", "3.0", "", "+1"] {
            t.cmd(&["SET", "n", bad]);
            assert_eq!(t.cmd(&["INCR", "n"]), err(errors::NOT_INTEGER), "{bad:?}");
        }
        make_hash(&t, "h", &["f"]);
        assert_eq!(t.cmd(&["INCR", "h"]), err(WRONGTYPE));
        // The increment is parsed before the type is checked.
        assert_eq!(t.cmd(&["INCRBY", "h", "x"]), err(errors::NOT_INTEGER));
        // INCR keeps the expiry.
        t.cmd(&["SET", "e", "1", "EX", "100"]);
        assert_eq!(t.cmd(&["INCR", "e"]), int(2));
        assert_eq!(t.cmd(&["TTL", "e"]), int(100));
        // An expired counter starts over.
        t.set_clock_ms(T0 + 100_000);
        assert_eq!(t.cmd(&["INCR", "e"]), int(1));
        assert_eq!(t.cmd(&["TTL", "e"]), int(-1));
    }

    #[test]
    fn incrbyfloat() {
        let t = new_db();
        assert_eq!(t.cmd(&["INCRBYFLOAT", "f", "10.5"]), bulk("10.5"));
        assert_eq!(t.cmd(&["INCRBYFLOAT", "f", "0.1"]), bulk("10.6"));
        assert_eq!(t.cmd(&["INCRBYFLOAT", "f", "-10.6"]), bulk("0"));
        assert_eq!(t.cmd(&["GET", "f"]), bulk("0"));
        t.cmd(&["SET", "f", "012"]);
        assert_eq!(t.cmd(&["INCRBYFLOAT", "f", "1"]), bulk("13"));
        t.cmd(&["SET", "f", "5"]);
        assert_eq!(t.cmd(&["INCRBYFLOAT", "f", "1.0e1"]), bulk("15"));
        assert_eq!(t.cmd(&["INCRBYFLOAT", "f", "abc"]), err(errors::NOT_FLOAT));
        assert_eq!(t.cmd(&["INCRBYFLOAT", "f", "inf"]), err(errors::INCR_NAN_OR_INF));
        t.cmd(&["SET", "f", "x"]);
        assert_eq!(t.cmd(&["INCRBYFLOAT", "f", "1"]), err(errors::NOT_FLOAT));
        make_hash(&t, "h", &["f"]);
        assert_eq!(t.cmd(&["INCRBYFLOAT", "h", "x"]), err(WRONGTYPE));
    }

    #[test]
    fn append_strlen() {
        let t = new_db();
        assert_eq!(t.cmd(&["STRLEN", "k"]), int(0));
        assert_eq!(t.cmd(&["APPEND", "k", ""]), int(0));
        assert_eq!(t.cmd(&["EXISTS", "k"]), int(1));
        assert_eq!(t.cmd(&["APPEND", "k", "Hello"]), int(5));
        assert_eq!(t.cmd(&["APPEND", "k", " World"]), int(11));
        assert_eq!(t.cmd(&["GET", "k"]), bulk("Hello World"));
        assert_eq!(t.cmd(&["STRLEN", "k"]), int(11));
        make_hash(&t, "h", &["f"]);
        assert_eq!(t.cmd(&["APPEND", "h", "x"]), err(WRONGTYPE));
        assert_eq!(t.cmd(&["STRLEN", "h"]), err(WRONGTYPE));
    }

    #[test]
    fn getrange_setrange() {
        let t = new_db();
        assert_eq!(t.cmd(&["GETRANGE", "s", "0", "-1"]), bulk(""));
        t.cmd(&["SET", "s", "Hello World"]);
        assert_eq!(t.cmd(&["GETRANGE", "s", "0", "4"]), bulk("Hello"));
        assert_eq!(t.cmd(&["GETRANGE", "s", "-3", "-1"]), bulk("rld"));
        assert_eq!(t.cmd(&["GETRANGE", "s", "-1", "-5"]), bulk(""));
        assert_eq!(t.cmd(&["GETRANGE", "s", "5", "2"]), bulk(""));
        assert_eq!(t.cmd(&["GETRANGE", "s", "0", "100"]), bulk("Hello World"));
        assert_eq!(t.cmd(&["GETRANGE", "s", "-100", "-50"]), bulk("H"));
        assert_eq!(t.cmd(&["GETRANGE", "s", "abc", "1"]), err(errors::NOT_INTEGER));
        assert_eq!(t.cmd(&["SETRANGE", "s", "6", "Redis"]), int(11));
        assert_eq!(t.cmd(&["GET", "s"]), bulk("Hello Redis"));
        assert_eq!(t.cmd(&["SETRANGE", "s", "13", "!"]), int(14));
        assert_eq!(t.cmd(&["GET", "s"]), bulk("Hello Redis\0\0!"));
        assert_eq!(t.cmd(&["SETRANGE", "s", "0", ""]), int(14));
        assert_eq!(t.cmd(&["SETRANGE", "n", "3", ""]), int(0));
        assert_eq!(t.cmd(&["EXISTS", "n"]), int(0));
        assert_eq!(t.cmd(&["SETRANGE", "n", "536870912", ""]), int(0));
        assert_eq!(t.cmd(&["SETRANGE", "n", "2", "ab"]), int(4));
        assert_eq!(t.cmd(&["GET", "n"]), bulk("\0\0ab"));
        assert_eq!(t.cmd(&["SETRANGE", "s", "-1", "x"]), err(errors::OFFSET_OUT_OF_RANGE));
        assert_eq!(t.cmd(&["SETRANGE", "s", "x", "x"]), err(errors::NOT_INTEGER));
        assert_eq!(
            t.cmd(&["SETRANGE", "s", "536870912", "x"]),
            err(errors::STRING_TOO_LONG)
        );
        assert_eq!(
            t.cmd(&["SETRANGE", "s", "9223372036854775807", "x"]),
            err(errors::STRING_TOO_LONG)
        );
        make_hash(&t, "h", &["f"]);
        assert_eq!(t.cmd(&["GETRANGE", "h", "0", "1"]), err(WRONGTYPE));
        assert_eq!(t.cmd(&["SETRANGE", "h", "0", "x"]), err(WRONGTYPE));
    }

    #[test]
    fn strings_survive_reopen() {
        let t = new_db();
        t.cmd(&["SET", "a", "1"]);
        t.cmd(&["SET", "b", "2", "EX", "100"]);
        t.cmd(&["INCRBY", "a", "41"]);
        t.cmd(&["APPEND", "c", "xyz"]);
        t.cmd(&["SET", "gone", "x", "PX", "10"]);
        let t = t.reopen();
        t.set_clock_ms(T0 + 50);
        assert_eq!(
            t.cmd(&["MGET", "a", "b", "c", "gone"]),
            Reply::Array(vec![bulk("42"), bulk("2"), bulk("xyz"), Reply::Null])
        );
        assert_eq!(t.cmd(&["PTTL", "b"]), int(99_950));
        assert_eq!(t.db.key_count(), 4);
        assert_eq!(t.db.expires_count(), 2);
    }

    #[test]
    fn lcs() {
        let t = TestDb::new();
        t.cmd(&["SET", "a", "ohmytext"]);
        t.cmd(&["SET", "b", "mynewtext"]);
        assert_eq!(t.cmd(&["LCS", "a", "b"]), bulk("mytext"));
        assert_eq!(t.cmd(&["LCS", "a", "b", "LEN"]), Reply::Int(6));
        let range = |a: i64, b: i64| Reply::Array(vec![Reply::Int(a), Reply::Int(b)]);
        let idx = |matches: Vec<Reply>, len: i64| {
            Reply::Map(vec![
                (bulk("matches"), Reply::Array(matches)),
                (bulk("len"), Reply::Int(len)),
            ])
        };
        assert_eq!(
            t.cmd(&["LCS", "a", "b", "IDX"]),
            idx(
                vec![
                    Reply::Array(vec![range(4, 7), range(5, 8)]),
                    Reply::Array(vec![range(2, 3), range(0, 1)]),
                ],
                6
            )
        );
        assert_eq!(
            t.cmd(&["LCS", "a", "b", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"]),
            idx(vec![Reply::Array(vec![range(4, 7), range(5, 8), Reply::Int(4)])], 6)
        );
        assert_eq!(
            t.cmd(&["LCS", "a", "b", "IDX", "MINMATCHLEN", "-3"]),
            t.cmd(&["LCS", "a", "b", "IDX"])
        );
        // Missing keys are empty strings.
        assert_eq!(t.cmd(&["LCS", "a", "nokey"]), bulk(""));
        assert_eq!(t.cmd(&["LCS", "nokey", "nokey2", "IDX"]), idx(vec![], 0));
        assert_eq!(
            t.cmd(&["LCS", "a", "b", "LEN", "IDX"]),
            err("ERR If you want both the length and indexes, please just use IDX.")
        );
        assert_eq!(t.cmd(&["LCS", "a", "b", "NOPE"]), err(errors::SYNTAX));
        assert_eq!(t.cmd(&["LCS", "a", "b", "MINMATCHLEN"]), err(errors::SYNTAX));
        assert_eq!(t.cmd(&["LCS", "a", "b", "MINMATCHLEN", "x"]), err(errors::NOT_INTEGER));
        t.cmd(&["RPUSH", "l", "x"]);
        // The type is checked before the options.
        assert_eq!(
            t.cmd(&["LCS", "a", "l", "NOPE"]),
            err("ERR The specified keys must contain string values")
        );
        // The table may not exceed proto-max-bulk-len.
        let big = "x".repeat(12_000);
        t.cmd(&["SET", "big1", &big]);
        t.cmd(&["SET", "big2", &big]);
        assert_eq!(
            t.cmd(&["LCS", "big1", "big2", "LEN"]),
            err("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len")
        );
        assert_eq!(t.cmd(&["LCS", "big1", "a", "LEN"]), Reply::Int(1));
    }
}
