//! Decoder and encoder tests: byte-exact against Redis 7.0.15's behaviour.

use bytes::{Bytes, BytesMut};
use rand::{Rng, SeedableRng};

use super::*;

fn args(req: &Request) -> Vec<&[u8]> {
    req.args.iter().map(|a| &a[..]).collect()
}

/// Decodes everything in `input` with the stateless decoder.
fn decode_all(input: &[u8], limits: &Limits) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
    let mut buf = BytesMut::from(input);
    let mut out = Vec::new();
    while let Some(req) = decode(&mut buf, limits)? {
        out.push(req.args.iter().map(|a| a.to_vec()).collect());
    }
    Ok(out)
}

fn err(input: &[u8]) -> String {
    decode_all(input, &Limits::default()).unwrap_err().to_string()
}

#[test]
fn multibulk_and_inline() {
    let l = Limits::default();
    let mut buf = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$0\r\n\r\nPING\r\n"[..]);
    let req = decode(&mut buf, &l).unwrap().unwrap();
    assert_eq!(args(&req), [&b"SET"[..], b"a", b""]);
    let req = decode(&mut buf, &l).unwrap().unwrap();
    assert_eq!(args(&req), [&b"PING"[..]]);
    assert!(decode(&mut buf, &l).unwrap().is_none());
    assert!(buf.is_empty());
}

#[test]
fn empty_commands_are_skipped() {
    let got = decode_all(b"*0\r\n*-1\r\n*-5\r\n\r\n\n   \r\nPING\r\n", &Limits::default()).unwrap();
    assert_eq!(got, vec![vec![b"PING".to_vec()]]);
    let got = decode_all(b"*1\r\n$4\r\nping\r\n\n\nping\n", &Limits::default()).unwrap();
    assert_eq!(got.len(), 2);
}

#[test]
fn redis_quirks() {
    // Redis skips the two bytes after a payload without checking them.
    let got = decode_all(b"*1\r\n$4\r\nPINGxxPING\r\n", &Limits::default()).unwrap();
    assert_eq!(got, vec![vec![b"PING".to_vec()], vec![b"PING".to_vec()]]);
}

#[test]
fn protocol_errors_match_redis() {
    // Each input and reply checked against redis-server 7.0.15.
    assert_eq!(err(b"*2147483648\r\n"), "Protocol error: invalid multibulk length");
    assert_eq!(err(b"*+1\r\n"), "Protocol error: invalid multibulk length");
    assert_eq!(err(b"*01\r\n"), "Protocol error: invalid multibulk length");
    assert_eq!(err(b"*-0\r\n"), "Protocol error: invalid multibulk length");
    assert_eq!(err(b"*\r\n"), "Protocol error: invalid multibulk length");
    assert_eq!(err(b"*1\n$4\r\nPING\r\n"), "Protocol error: invalid multibulk length");
    assert_eq!(err(b"*1\r\n$-1\r\n"), "Protocol error: invalid bulk length");
    assert_eq!(err(b"*1\r\n$536870913\r\n"), "Protocol error: invalid bulk length");
    assert_eq!(err(b"*1\r\n$+4\r\n"), "Protocol error: invalid bulk length");
    assert_eq!(err(b"*1\r\n$04\r\n"), "Protocol error: invalid bulk length");
    assert_eq!(err(b"*1\r\n$\r\n"), "Protocol error: invalid bulk length");
    assert_eq!(err(b"*1\r\nx\r\n"), "Protocol error: expected '$', got 'x'");
    assert_eq!(err(b"\"a\"b\r\n"), "Protocol error: unbalanced quotes in request");
    assert_eq!(err(b"set \"a\n"), "Protocol error: unbalanced quotes in request");
    assert_eq!(err(&[b'x'; 70000]), "Protocol error: too big inline request");
    let mut mbulk = b"*".to_vec();
    mbulk.extend_from_slice(&[b'1'; 70000]);
    assert_eq!(err(&mbulk), "Protocol error: too big mbulk count string");
    let mut bulk = b"*1\r\n$".to_vec();
    bulk.extend_from_slice(&[b'1'; 70000]);
    assert_eq!(err(&bulk), "Protocol error: too big bulk count string");
    assert_eq!(
        ProtocolError::InvalidBulkLength.to_reply().unwrap().to_bytes(false),
        b"-ERR Protocol error: invalid bulk length\r\n"
    );
    assert!(ProtocolError::QueryBufferExceeded {
        buffered_bytes: 2,
        limit_bytes: 1
    }
    .to_reply()
    .is_none());
}

#[test]
fn limits_reject_headers_before_payload() {
    let l = Limits {
        bulk_bytes_max: 10,
        multibulk_count_max: 3,
        inline_bytes_max: 16,
        query_buffer_bytes_max: 64,
        unauthenticated: false,
    };
    assert_eq!(decode_all(b"*1\r\n$11\r\n", &l), Err(ProtocolError::InvalidBulkLength));
    assert!(decode_all(b"*1\r\n$10\r\n", &l).unwrap().is_empty());
    assert_eq!(decode_all(b"*4\r\n", &l), Err(ProtocolError::InvalidMultibulkLength));
    assert!(decode_all(b"*3\r\n", &l).unwrap().is_empty());
    assert_eq!(decode_all(&[b'a'; 17], &l), Err(ProtocolError::TooBigInline));
    assert!(decode_all(&[b'a'; 16], &l).unwrap().is_empty());
    assert_eq!(
        decode_all(b"*11111111111111111", &l),
        Err(ProtocolError::TooBigMultibulkCount)
    );
    assert_eq!(
        decode_all(b"*1\r\n$11111111111111111", &l),
        Err(ProtocolError::TooBigBulkCount)
    );
    // An inline line longer than the limit is fine once its newline is there, as in Redis.
    assert_eq!(decode_all(b"echo aaaaaaaaaaaaaaaaaaaaaaaaa\n", &l).unwrap().len(), 1);
    // Query buffer: a partial frame larger than the limit.
    let l = Limits {
        bulk_bytes_max: 1000,
        query_buffer_bytes_max: 64,
        ..Limits::default()
    };
    let mut input = b"*1\r\n$100\r\n".to_vec();
    input.extend_from_slice(&[b'v'; 60]);
    assert!(matches!(
        decode_all(&input, &l),
        Err(ProtocolError::QueryBufferExceeded { limit_bytes: 64, .. })
    ));
    let mut buf = BytesMut::from(&input[..]);
    let mut dec = Decoder::new();
    assert!(matches!(
        dec.decode(&mut buf, &l),
        Err(ProtocolError::QueryBufferExceeded { .. })
    ));
    // The stateful decoder counts arguments it already holds.
    let l = Limits {
        query_buffer_bytes_max: 25,
        ..Limits::default()
    };
    let mut dec = Decoder::new();
    let mut buf = BytesMut::from(&b"*3\r\n$10\r\n0123456789\r\n$10\r\n0123456789\r\n$10\r\n01"[..]);
    assert!(matches!(
        dec.decode(&mut buf, &l),
        Err(ProtocolError::QueryBufferExceeded { .. })
    ));
}

#[test]
fn inline_quoting_follows_sdssplitargs() {
    let split = |s: &[u8]| {
        split_args(s).map(|v| {
            v.into_iter()
                .map(|a| String::from_utf8_lossy(&a).into_owned())
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(split(b"  \"a\\x41\" b").unwrap(), ["aA", "b"]);
    assert_eq!(split(b"'a\\'b' c").unwrap(), ["a'b", "c"]);
    assert_eq!(split(b"\"\\x4g\"").unwrap(), ["x4g"]);
    assert_eq!(split(b"\"\\q\\n\\t\\r\\b\\a\"").unwrap(), ["q\n\t\r\u{8}\u{7}"]);
    assert_eq!(split(b"'a\\nb'").unwrap(), ["a\\nb"]);
    assert_eq!(split(b"ECHO\tx").unwrap(), ["ECHO", "x"]);
    assert_eq!(split(b"ECHO  a\x0bb").unwrap(), ["ECHO", "a\x0bb"]);
    assert_eq!(split(b"\"\"").unwrap(), [""]);
    assert_eq!(split(b"").unwrap(), Vec::<String>::new());
    assert_eq!(split(b"   ").unwrap(), Vec::<String>::new());
    assert!(split(b"\"a\"b").is_none());
    assert!(split(b"'a'b").is_none());
    assert!(split(b"\"abc").is_none());
    assert!(split(b"'abc").is_none());
    assert!(split(b"\"abc\\").is_none());
}

fn pipeline() -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\n");
    v.extend_from_slice(b"PING\r\n\r\n*0\r\n");
    v.extend_from_slice(b"set 'a b' \"c\\x00d\"\n");
    v.extend_from_slice(b"*2\r\n$4\r\nMGET\r\n$0\r\n\r\n");
    v.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    v
}

#[test]
fn split_at_every_boundary_decodes_identically() {
    let l = Limits::default();
    let input = pipeline();
    let whole = decode_all(&input, &l).unwrap();
    assert_eq!(whole.len(), 5);
    for split in 0..=input.len() {
        for stateful in [false, true] {
            let mut dec = Decoder::new();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for part in [&input[..split], &input[split..]] {
                buf.extend_from_slice(part);
                loop {
                    let r = if stateful {
                        dec.decode(&mut buf, &l)
                    } else {
                        decode(&mut buf, &l)
                    };
                    match r.unwrap() {
                        Some(req) => got.push(req.args.iter().map(|a| a.to_vec()).collect::<Vec<_>>()),
                        None => break,
                    }
                }
            }
            assert_eq!(got, whole, "split at {split}, stateful {stateful}");
        }
    }
}

#[test]
fn byte_by_byte_decodes_identically() {
    let l = Limits::default();
    let input = pipeline();
    let whole = decode_all(&input, &l).unwrap();
    let mut dec = Decoder::new();
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    for &b in &input {
        buf.extend_from_slice(&[b]);
        while let Some(req) = dec.decode(&mut buf, &l).unwrap() {
            got.push(req.args.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
        }
    }
    assert_eq!(got, whole);
}

#[test]
fn large_frame_in_small_reads_is_linear() {
    // 200k arguments fed 1 KiB at a time: the stateful decoder keeps its place.
    let l = Limits::default();
    let n = 200_000;
    let mut input = format!("*{n}\r\n").into_bytes();
    for _ in 0..n {
        input.extend_from_slice(b"$2\r\nab\r\n");
    }
    let mut dec = Decoder::new();
    let mut buf = BytesMut::new();
    let mut got = None;
    for chunk in input.chunks(1024) {
        buf.extend_from_slice(chunk);
        if let Some(req) = dec.decode(&mut buf, &l).unwrap() {
            got = Some(req);
        }
        assert!(dec.held_bytes() <= 2 * n);
    }
    assert_eq!(got.unwrap().args.len(), n);
    assert!(buf.is_empty());
}

#[test]
fn arguments_are_zero_copy() {
    let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"[..]);
    let start = buf.as_ptr() as usize;
    let req = decode(&mut buf, &Limits::default()).unwrap().unwrap();
    assert_eq!(req.args[1].as_ptr() as usize, start + 17);
}

#[test]
fn garbage_never_panics() {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0x1234_5678);
    let alphabet = b"*$\r\n0123456789-+ \"'\\xabPING";
    let l = Limits {
        bulk_bytes_max: 64,
        multibulk_count_max: 16,
        inline_bytes_max: 32,
        query_buffer_bytes_max: 256,
        unauthenticated: false,
    };
    for _ in 0..20_000 {
        let len = rng.gen_range(0..80);
        let input: Vec<u8> = (0..len)
            .map(|_| {
                if rng.gen_bool(0.8) {
                    alphabet[rng.gen_range(0..alphabet.len())]
                } else {
                    rng.gen()
                }
            })
            .collect();
        let whole = decode_all(&input, &l);
        // Splitting the input never changes the outcome (commands, then the error).
        let split = rng.gen_range(0..=input.len());
        let mut dec = Decoder::new();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut error = None;
        'feed: for part in [&input[..split], &input[split..]] {
            buf.extend_from_slice(part);
            loop {
                match dec.decode(&mut buf, &l) {
                    Ok(Some(req)) => {
                        assert!(!req.args.is_empty());
                        got.push(req.args.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
                    }
                    Ok(None) => break,
                    Err(e) => {
                        error = Some(e);
                        break 'feed;
                    }
                }
            }
        }
        // As in Redis, a split run may stop first at a size check on a partial
        // line or buffer; otherwise both runs agree.
        let size_error = matches!(
            error,
            Some(
                ProtocolError::QueryBufferExceeded { .. }
                    | ProtocolError::TooBigInline
                    | ProtocolError::TooBigBulkCount
                    | ProtocolError::TooBigMultibulkCount
            )
        );
        match whole {
            Ok(cmds) if size_error => assert!(cmds.starts_with(&got), "{input:?}"),
            Ok(cmds) => {
                assert_eq!(got, cmds, "{input:?}");
                assert!(error.is_none(), "{input:?}");
            }
            Err(e) => {
                if !size_error {
                    assert_eq!(error, Some(e), "{input:?}");
                }
            }
        }
    }
}

fn enc(r: &Reply) -> (Vec<u8>, Vec<u8>) {
    (r.to_bytes(false), r.to_bytes(true))
}

#[test]
fn replies_in_both_protocols() {
    let b = |s: &'static str| Reply::Bulk(Bytes::from_static(s.as_bytes()));
    let cases: Vec<(Reply, &[u8], &[u8])> = vec![
        (Reply::ok(), b"+OK\r\n", b"+OK\r\n"),
        (
            Reply::error("ERR syntax error"),
            b"-ERR syntax error\r\n",
            b"-ERR syntax error\r\n",
        ),
        (Reply::error("ERR a\r\nb"), b"-ERR a  b\r\n", b"-ERR a  b\r\n"),
        (Reply::Int(-42), b":-42\r\n", b":-42\r\n"),
        (
            Reply::Int(i64::MIN),
            b":-9223372036854775808\r\n",
            b":-9223372036854775808\r\n",
        ),
        (b("hello"), b"$5\r\nhello\r\n", b"$5\r\nhello\r\n"),
        (b(""), b"$0\r\n\r\n", b"$0\r\n\r\n"),
        (Reply::Null, b"$-1\r\n", b"_\r\n"),
        (Reply::NullArray, b"*-1\r\n", b"_\r\n"),
        (Reply::Array(vec![]), b"*0\r\n", b"*0\r\n"),
        (
            Reply::Array(vec![b("a"), Reply::Null]),
            b"*2\r\n$1\r\na\r\n$-1\r\n",
            b"*2\r\n$1\r\na\r\n_\r\n",
        ),
        (
            Reply::Map(vec![(b("f"), Reply::Int(1))]),
            b"*2\r\n$1\r\nf\r\n:1\r\n",
            b"%1\r\n$1\r\nf\r\n:1\r\n",
        ),
        (Reply::Set(vec![b("m")]), b"*1\r\n$1\r\nm\r\n", b"~1\r\n$1\r\nm\r\n"),
        (Reply::Double(1.5), b"$3\r\n1.5\r\n", b",1.5\r\n"),
        (
            Reply::Double(0.1),
            b"$19\r\n0.10000000000000001\r\n",
            b",0.10000000000000001\r\n",
        ),
        (Reply::Double(f64::INFINITY), b"$3\r\ninf\r\n", b",inf\r\n"),
        (Reply::Double(f64::NEG_INFINITY), b"$4\r\n-inf\r\n", b",-inf\r\n"),
        (Reply::Bool(true), b":1\r\n", b"#t\r\n"),
        (Reply::Bool(false), b":0\r\n", b"#f\r\n"),
        (
            Reply::Verbatim {
                format: *b"txt",
                text: Bytes::from_static(b"hi"),
            },
            b"$2\r\nhi\r\n",
            b"=6\r\ntxt:hi\r\n",
        ),
        (
            Reply::BigNumber(Bytes::from_static(b"123")),
            b"$3\r\n123\r\n",
            b"(123\r\n",
        ),
        (
            Reply::Push(vec![b("message")]),
            b"*1\r\n$7\r\nmessage\r\n",
            b">1\r\n$7\r\nmessage\r\n",
        ),
    ];
    for (reply, resp2, resp3) in cases {
        let (two, three) = enc(&reply);
        assert_eq!(two, resp2, "{reply:?} RESP2");
        assert_eq!(three, resp3, "{reply:?} RESP3");
    }
}

#[test]
fn encoder_writes_headers() {
    let mut out = Vec::new();
    let e2 = Encoder::new(false);
    let e3 = Encoder::new(true);
    e2.map_header(&mut out, 2);
    e3.map_header(&mut out, 2);
    e2.set_header(&mut out, 3);
    e3.set_header(&mut out, 3);
    e2.ok(&mut out);
    e3.bulk(&mut out, b"x");
    assert_eq!(out, b"*4\r\n%2\r\n*3\r\n~3\r\n+OK\r\n$1\r\nx\r\n");
}

#[test]
fn reply_is_send() {
    fn assert_send<T: Send + Sync + 'static>() {}
    assert_send::<Reply>();
    assert_send::<Request>();
}

#[test]
fn pairs_are_flat_in_resp2_and_nested_in_resp3() {
    let r = Reply::Pairs(vec![
        Reply::bulk("a"),
        Reply::Double(1.5),
        Reply::bulk("b"),
        Reply::Double(2.0),
    ]);
    assert_eq!(
        r.to_bytes(false),
        b"*4\r\n$1\r\na\r\n$3\r\n1.5\r\n$1\r\nb\r\n$1\r\n2\r\n".to_vec()
    );
    assert_eq!(
        r.to_bytes(true),
        b"*2\r\n*2\r\n$1\r\na\r\n,1.5\r\n*2\r\n$1\r\nb\r\n,2\r\n".to_vec()
    );
}

#[test]
fn an_unauthenticated_client_gets_small_frames_only() {
    let l = Limits {
        unauthenticated: true,
        ..Limits::default()
    };
    assert_eq!(
        decode_all(b"*11\r\n", &l),
        Err(ProtocolError::UnauthenticatedMultibulkLength)
    );
    assert!(decode_all(b"*10\r\n", &l).unwrap().is_empty());
    assert_eq!(
        decode_all(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n", &l),
        Err(ProtocolError::UnauthenticatedBulkLength)
    );
    let big = format!("*2\r\n$4\r\nAUTH\r\n$16384\r\n{}\r\n", "p".repeat(16384));
    assert_eq!(decode_all(big.as_bytes(), &l).unwrap().len(), 1);
    assert_eq!(
        ProtocolError::UnauthenticatedBulkLength.to_reply(),
        Some(crate::resp::Reply::error(
            "ERR Protocol error: unauthenticated bulk length"
        ))
    );
}
