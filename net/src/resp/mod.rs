//! RESP2/RESP3: the request decoder, the reply encoder, Redis's number
//! rules and error texts, and the command table.

pub mod command;
#[rustfmt::skip]
mod command_table;
pub mod decode;
pub mod errors;
pub mod num;
pub mod reply;

pub use command::{all, lookup, CommandSpec, StaticReply};
pub use decode::{decode, split_args, Decoder, Limits, ProtocolError, Request};
pub use reply::{Encoder, Reply};

#[cfg(test)]
mod tests;
