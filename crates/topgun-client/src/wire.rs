//! Messages to and from WebSocket frames through the connection's codec.

use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use topgun_protocol::{ClientMessage, Codec, DecodeError, EncodeError, ServerMessage};

/// Encodes a client message into the frame type of the codec's encoding
/// (binary for bincode, text for JSON).
pub(crate) fn encode(codec: &Codec, msg: &ClientMessage) -> Result<Message, EncodeError> {
    let bytes = codec.encode_client(msg)?;
    if codec.encoding().is_binary() {
        Ok(Message::Binary(bytes.into()))
    } else {
        String::from_utf8(bytes)
            .map(|text| Message::Text(text.into()))
            .map_err(|e| EncodeError::Unexpected {
                detail: format!("JSON encoder produced invalid UTF-8: {e}"),
            })
    }
}

/// The payload of a data frame, or `None` for control frames.
pub(crate) fn payload(frame: &Message) -> Option<&[u8]> {
    match frame {
        Message::Binary(b) => Some(b),
        Message::Text(t) => Some(t.as_bytes()),
        _ => None,
    }
}

/// Decodes a data frame's payload as a server message.
pub(crate) fn decode(codec: &Codec, payload: &[u8]) -> Result<ServerMessage, DecodeError> {
    codec.decode_server(payload)
}

/// A close frame with `code` and `reason`.
pub(crate) fn close_frame(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.to_owned().into(),
    }))
}

/// The code and reason of a received close frame.
pub(crate) fn close_parts(frame: Option<&CloseFrame>) -> (Option<u16>, String) {
    match frame {
        Some(f) => (Some(u16::from(f.code)), f.reason.as_str().to_owned()),
        None => (None, "closed without a status code".to_owned()),
    }
}

/// Standard close codes used by the client.
pub(crate) mod codes {
    /// Normal closure.
    pub(crate) const NORMAL: u16 = 1000;
    /// Protocol error: the server sent something this client cannot decode.
    pub(crate) const PROTOCOL_ERROR: u16 = 1002;
}
