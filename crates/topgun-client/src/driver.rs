//! The background tasks that own an established connection's socket: a
//! reader that decodes and routes every server message, and a writer that
//! drains the outbound queues.
//!
//! The WebSocket is split so that a large write never stops the reader
//! (a client blocked writing while the server is blocked writing acks back
//! would deadlock). The writer takes frames from two bounded queues: the
//! control queue (pongs, renewal `AUTH`s, `QUERY_UNSUB`s; served first) and
//! the request queue that every [`crate::Client`] method feeds. When the
//! reader sees the connection end it tears the router down (every pending
//! request fails with the close code) and stops the writer; when the writer
//! fails it does the same and stops the reader.

use std::sync::Arc;
use std::time::Instant;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;
use topgun_protocol::{ClientMessage, negotiate_version};

use crate::client::Shared;
use crate::error::{CloseInfo, CloseInitiator};
use crate::event::{ClientEvent, RenewalSkipped};
use crate::handshake::token_reason;
use crate::router::Action;
use crate::transport::WsStream;
use crate::wire::{self, codes};

/// How many frames are fed to the socket before one flush.
const WRITE_BATCH: usize = 64;

/// Starts the reader and writer tasks of an authenticated connection.
pub(crate) fn spawn(
    ws: WsStream,
    shared: Arc<Shared>,
    outbound: mpsc::Receiver<Message>,
    control: mpsc::Receiver<Message>,
) {
    let (sink, stream) = ws.split();
    let stop_writer = Arc::new(Notify::new());
    tokio::spawn(write_loop(
        sink,
        outbound,
        control,
        shared.clone(),
        stop_writer.clone(),
    ));
    tokio::spawn(read_loop(stream, shared, stop_writer));
}

async fn read_loop(
    mut stream: SplitStream<WsStream>,
    shared: Arc<Shared>,
    stop_writer: Arc<Notify>,
) {
    let mut actions = Vec::new();
    let info = loop {
        let item = tokio::select! {
            () = shared.stop_reader.notified() => {
                break ended(&shared, CloseInfo {
                    code: None,
                    reason: "the connection was stopped".to_owned(),
                    initiator: CloseInitiator::Transport,
                });
            }
            item = stream.next() => item,
        };
        let frame = match item {
            None => {
                break ended(
                    &shared,
                    CloseInfo {
                        code: None,
                        reason: "the connection ended without a close frame".to_owned(),
                        initiator: CloseInitiator::Transport,
                    },
                );
            }
            Some(Err(e)) => {
                break ended(
                    &shared,
                    CloseInfo {
                        code: None,
                        reason: format!("connection failed: {e}"),
                        initiator: CloseInitiator::Transport,
                    },
                );
            }
            Some(Ok(frame)) => frame,
        };
        if let Message::Close(close) = &frame {
            let (code, reason) = wire::close_parts(close.as_ref());
            let initiator = if shared.router().client_close().is_some() {
                CloseInitiator::Client
            } else {
                CloseInitiator::Server
            };
            break CloseInfo {
                code,
                reason,
                initiator,
            };
        }
        let Some(payload) = wire::payload(&frame) else {
            continue;
        };
        match wire::decode(&shared.codec, payload) {
            Ok(msg) => {
                shared
                    .router()
                    .handle(msg, payload.len(), Instant::now(), &mut actions);
                for action in actions.drain(..) {
                    perform(&shared, action);
                }
            }
            Err(e) => {
                let reason = format!("undecodable server message: {e}");
                tracing::warn!(%reason, "closing the connection");
                shared
                    .router()
                    .set_client_close(Some(codes::PROTOCOL_ERROR), "undecodable message");
                shared.try_send_frame(wire::close_frame(
                    codes::PROTOCOL_ERROR,
                    "undecodable message",
                ));
                break CloseInfo {
                    code: Some(codes::PROTOCOL_ERROR),
                    reason,
                    initiator: CloseInitiator::ProtocolViolation,
                };
            }
        }
    };
    tracing::debug!(?info, "connection ended");
    shared.teardown(info);
    // Keep reading for a moment so the close handshake can finish (the
    // WebSocket library answers the server's close frame while reading).
    let _ = tokio::time::timeout(shared.close_grace, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
    stop_writer.notify_one();
}

/// How the connection ended when no close frame arrived: a close this
/// client sent and the server never answered (or the stream was stopped
/// after it) still counts as the client's close with its code; otherwise
/// `fallback`.
fn ended(shared: &Shared, fallback: CloseInfo) -> CloseInfo {
    let router = shared.router();
    if let Some(info) = router.closed() {
        return info.clone();
    }
    match router.client_close() {
        Some((code, reason)) => CloseInfo {
            code: *code,
            reason: reason.clone(),
            initiator: CloseInitiator::Client,
        },
        None => fallback,
    }
}

/// Carries out one routing action.
fn perform(shared: &Arc<Shared>, action: Action) {
    match action {
        Action::Send(msg) => shared.try_send_message(&msg),
        Action::Renew {
            min_version,
            max_version,
            reason,
        } => {
            let shared = shared.clone();
            // The provider may take its time (an HTTP call); the reader
            // must keep routing meanwhile.
            tokio::spawn(async move {
                let Some(version) = negotiate_version(min_version, max_version) else {
                    shared.publish(ClientEvent::RenewalSkipped(
                        RenewalSkipped::UnsupportedVersion,
                    ));
                    return;
                };
                let Some(token) = shared.provider.token(token_reason(reason)).await else {
                    shared.publish(ClientEvent::RenewalSkipped(RenewalSkipped::NoToken));
                    return;
                };
                let auth = ClientMessage::Auth {
                    token,
                    protocol_version: version,
                };
                match wire::encode(&shared.codec, &auth) {
                    Ok(frame) => {
                        let _ = shared.control.send(frame).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot encode the renewal AUTH");
                        shared.publish(ClientEvent::RenewalSkipped(RenewalSkipped::Encode));
                    }
                }
            });
        }
        Action::Session(info) => {
            shared.session.send_replace(info);
        }
        Action::Event(event) => shared.publish(event),
        Action::Observe(ts) => shared.clock.observe(&ts),
    }
}

enum WriteEnd {
    /// The reader ended the connection.
    Stopped,
    /// This client sent its close frame.
    SentClose,
}

async fn write_loop(
    mut sink: SplitSink<WsStream, Message>,
    mut outbound: mpsc::Receiver<Message>,
    mut control: mpsc::Receiver<Message>,
    shared: Arc<Shared>,
    stop: Arc<Notify>,
) {
    let result = loop {
        let first = tokio::select! {
            biased;
            () = stop.notified() => break Ok(WriteEnd::Stopped),
            Some(frame) = control.recv() => frame,
            frame = outbound.recv() => match frame {
                Some(frame) => frame,
                // Every client handle is gone: close politely.
                None => wire::close_frame(codes::NORMAL, "client dropped"),
            },
        };
        match write_some(&mut sink, first, &mut outbound, &mut control, &shared).await {
            Ok(true) => break Ok(WriteEnd::SentClose),
            Ok(false) => {}
            Err(e) => break Err(e),
        }
    };
    match result {
        Ok(WriteEnd::Stopped) => {}
        Ok(WriteEnd::SentClose) => {
            // Wait for the reader to see the server's answer; a server that
            // never answers is cut off after the grace period.
            if tokio::time::timeout(shared.close_grace, stop.notified())
                .await
                .is_err()
            {
                shared.stop_reader.notify_one();
            }
        }
        Err(e) => {
            shared.teardown(CloseInfo {
                code: None,
                reason: format!("writing to the connection failed: {e}"),
                initiator: CloseInitiator::Transport,
            });
            shared.stop_reader.notify_one();
        }
    }
}

/// Feeds `first` and whatever else is queued (up to [`WRITE_BATCH`]
/// frames), then flushes once. Returns whether a close frame was sent.
async fn write_some(
    sink: &mut SplitSink<WsStream, Message>,
    first: Message,
    outbound: &mut mpsc::Receiver<Message>,
    control: &mut mpsc::Receiver<Message>,
    shared: &Shared,
) -> Result<bool, tokio_tungstenite::tungstenite::Error> {
    let mut next = Some(first);
    let mut fed = 0;
    while let Some(frame) = next.take() {
        let is_close = if let Message::Close(close) = &frame {
            let (code, reason) = wire::close_parts(close.as_ref());
            shared.router().set_client_close(code, &reason);
            true
        } else {
            false
        };
        sink.feed(frame).await?;
        fed += 1;
        if is_close {
            sink.flush().await?;
            return Ok(true);
        }
        if fed < WRITE_BATCH {
            next = control.try_recv().ok().or_else(|| outbound.try_recv().ok());
        }
    }
    sink.flush().await?;
    Ok(false)
}
