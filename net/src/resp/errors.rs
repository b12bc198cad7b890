//! Redis 7's error replies, word for word, in one place. Each is the whole
//! error line without the leading `-` and trailing CRLF.

use bytes::Bytes;

pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
pub const SYNTAX: &str = "ERR syntax error";
pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
pub const NOT_FLOAT: &str = "ERR value is not a valid float";
pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
pub const INCR_NAN_OR_INF: &str = "ERR increment would produce NaN or Infinity";
pub const NO_SUCH_KEY: &str = "ERR no such key";
pub const SAME_OBJECT: &str = "ERR source and destination objects are the same";
pub const INDEX_OUT_OF_RANGE: &str = "ERR index out of range";
pub const MIN_MAX_NOT_FLOAT: &str = "ERR min or max is not a float";
pub const MIN_MAX_NOT_STRING_RANGE: &str = "ERR min or max not valid string range item";
pub const NOT_FLOAT_HASH: &str = "ERR hash value is not a float";
pub const NOT_INTEGER_HASH: &str = "ERR hash value is not an integer";
pub const STRING_TOO_LONG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
pub const OFFSET_OUT_OF_RANGE: &str = "ERR offset is out of range";
pub const READONLY_REPLICA: &str = "READONLY You can't write against a read only replica.";
pub const MAX_CLIENTS: &str = "ERR max number of clients reached";
pub const DB_INDEX_OUT_OF_RANGE: &str = "ERR DB index is out of range";
pub const EXEC_WITHOUT_MULTI: &str = "ERR EXEC without MULTI";
pub const MULTI_NESTED: &str = "ERR MULTI calls can not be nested";
pub const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";
pub const DISCARD_WITHOUT_MULTI: &str = "ERR DISCARD without MULTI";
pub const WATCH_INSIDE_MULTI: &str = "ERR WATCH inside MULTI is not allowed";
pub const NOT_IN_MULTI: &str = "ERR Command not allowed inside a transaction";
pub const NO_SHUTDOWN_IN_PROGRESS: &str = "ERR No shutdown in progress.";
pub const CLIENT_NAME_INVALID: &str = "ERR Client names cannot contain spaces, newlines or special characters.";
pub const NOAUTH: &str = "NOAUTH Authentication required.";
pub const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
pub const AUTH_WITHOUT_PASSWORD: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";
pub const HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";
pub const NOPROTO: &str = "NOPROTO unsupported protocol version";
pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
pub const CURSOR_INVALID: &str = "ERR invalid cursor";
pub const TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";
pub const TIMEOUT_NOT_FLOAT: &str = "ERR timeout is not a float or out of range";
pub const NX_XX_GT_LT_EXCLUSIVE: &str = "ERR GT, LT, and/or NX options at the same time are not compatible";
pub const XX_NX_EXCLUSIVE: &str = "ERR XX and NX options at the same time are not compatible";
pub const INCR_SINGLE_PAIR: &str = "ERR INCR option supports a single increment-element pair";
pub const SCORE_NAN: &str = "ERR resulting score is not a number (NaN)";

/// Most bytes of a command name or of all arguments quoted in an error.
const ERROR_QUOTE_BYTES_MAX: usize = 128;

/// Bytes of `s` up to its first NUL, as C's `%s` prints them.
fn c_str(s: &[u8]) -> &[u8] {
    memchr::memchr(0, s).map_or(s, |i| &s[..i])
}

/// Redis turns CR and LF in formatted errors into spaces.
fn sanitize(mut v: Vec<u8>) -> Bytes {
    for c in &mut v {
        if *c == b'\r' || *c == b'\n' {
            *c = b' ';
        }
    }
    Bytes::from(v)
}

/// `ERR wrong number of arguments for '<name>' command`, `name` lowercase
/// (`config|get` for a subcommand), as Redis 7 prints it.
pub fn wrong_arity(name: &str) -> Bytes {
    Bytes::from(format!(
        "ERR wrong number of arguments for '{}' command",
        name.to_ascii_lowercase()
    ))
}

/// `ERR invalid expire time in '<name>' command`.
pub fn invalid_expire_time(name: &str) -> Bytes {
    Bytes::from(format!(
        "ERR invalid expire time in '{}' command",
        name.to_ascii_lowercase()
    ))
}

/// `ERR unknown command '<name>', with args beginning with: '<a1>' '<a2>' `:
/// the name cut at 128 bytes, arguments quoted until their text reaches 128
/// bytes (the last one cut to fit), each followed by a space.
pub fn unknown_command(args: &[Bytes]) -> Bytes {
    let name = args.first().map_or(&b""[..], |n| c_str(n));
    let mut quoted: Vec<u8> = Vec::new();
    for arg in args.iter().skip(1) {
        if quoted.len() >= ERROR_QUOTE_BYTES_MAX {
            break;
        }
        let room = ERROR_QUOTE_BYTES_MAX - quoted.len();
        let arg = c_str(arg);
        quoted.push(b'\'');
        quoted.extend_from_slice(&arg[..arg.len().min(room)]);
        quoted.extend_from_slice(b"' ");
    }
    let mut line = b"ERR unknown command '".to_vec();
    line.extend_from_slice(&name[..name.len().min(ERROR_QUOTE_BYTES_MAX)]);
    line.extend_from_slice(b"', with args beginning with: ");
    line.extend_from_slice(&quoted);
    sanitize(line)
}

/// `ERR unknown subcommand '<sub>'. Try <CMD> HELP.`
pub fn unknown_subcommand(command: &str, subcommand: &[u8]) -> Bytes {
    let sub = c_str(subcommand);
    let mut line = b"ERR unknown subcommand '".to_vec();
    line.extend_from_slice(&sub[..sub.len().min(ERROR_QUOTE_BYTES_MAX)]);
    line.extend_from_slice(format!("'. Try {} HELP.", command.to_ascii_uppercase()).as_bytes());
    sanitize(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(v: &[&str]) -> Vec<Bytes> {
        v.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect()
    }

    #[test]
    fn unknown_command_matches_redis() {
        // Replies of redis-server 7.0.15.
        assert_eq!(
            &unknown_command(&b(&["nosuch", "a", "b", "c", "d"]))[..],
            b"ERR unknown command 'nosuch', with args beginning with: 'a' 'b' 'c' 'd' "
        );
        assert_eq!(
            &unknown_command(&b(&["nosuch"]))[..],
            b"ERR unknown command 'nosuch', with args beginning with: "
        );
        let long = "x".repeat(200);
        let reply = unknown_command(&b(&[&long, &long, "z"]));
        let expected = format!(
            "ERR unknown command '{}', with args beginning with: '{}' ",
            "x".repeat(128),
            "x".repeat(128)
        );
        assert_eq!(&reply[..], expected.as_bytes());
        let reply = unknown_command(&b(&["c", &"y".repeat(100), &"z".repeat(100), "w"]));
        let expected = format!(
            "ERR unknown command 'c', with args beginning with: '{}' '{}' ",
            "y".repeat(100),
            "z".repeat(25)
        );
        assert_eq!(&reply[..], expected.as_bytes());
        assert_eq!(
            &unknown_command(&b(&["a\r\nb"]))[..],
            b"ERR unknown command 'a  b', with args beginning with: "
        );
    }

    #[test]
    fn formatted_errors() {
        assert_eq!(
            &wrong_arity("GET")[..],
            b"ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            &wrong_arity("config|get")[..],
            b"ERR wrong number of arguments for 'config|get' command"
        );
        assert_eq!(
            &invalid_expire_time("SET")[..],
            b"ERR invalid expire time in 'set' command"
        );
        assert_eq!(
            &unknown_subcommand("config", b"foo")[..],
            b"ERR unknown subcommand 'foo'. Try CONFIG HELP."
        );
    }
}
