//! One client connection: frames in, each message handled on its own task,
//! answers out through one writer in whatever order they are ready (the
//! client matches them by STAN, as with a real host).
//!
//! Framing: a 2-byte big-endian length, not counting itself, then the message.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::codec::{self, Message};
use super::host::{Host, Kind, Reply, JUNK};

/// Answers ready but not yet written. A client that sends without reading
/// slows its handlers down instead of growing this.
const OUTBOX: usize = 256;
/// Messages handled at once on one connection; past it, reading waits.
const IN_FLIGHT: usize = 1024;

enum Out {
    Frame(Vec<u8>),
    /// Close the connection (the `DROP0000` knob).
    Close,
}

/// How the reading side ended.
enum Ending {
    /// The client closed its side: answers still pending go out first.
    ClientDone,
    /// A frame that is no message the host serves, a read error, or a close
    /// asked for: close at once, pending answers or not.
    Close,
}

pub(super) async fn serve(stream: TcpStream, host: Arc<Host>) {
    let (mut reader, writer) = stream.into_split();
    let (outbox, answers) = mpsc::channel(OUTBOX);
    let mut writing = tokio::spawn(write_frames(writer, answers));
    let mut handlers = JoinSet::new();
    let ending = loop {
        while handlers.try_join_next().is_some() {}
        if handlers.len() >= IN_FLIGHT {
            tokio::select! {
                _ = handlers.join_next() => continue,
                _ = &mut writing => break Ending::Close,
            }
        }
        // Only the read is dropped when the writer ends first, and then the
        // connection closes anyway, so its partial progress does not matter.
        let frame = tokio::select! {
            frame = read_frame(&mut reader) => frame,
            _ = &mut writing => break Ending::Close,
        };
        let bytes = match frame {
            Ok(Some(bytes)) => bytes,
            Ok(None) => break Ending::ClientDone,
            Err(_) => break Ending::Close,
        };
        let Some((kind, msg)) = codec::decode(&bytes)
            .ok()
            .and_then(|msg| Some((Kind::of(&msg.mti)?, msg)))
        else {
            // What a real host does with a message it cannot read.
            break Ending::Close;
        };
        let (host, outbox) = (host.clone(), outbox.clone());
        handlers.spawn(async move { answer(&host, kind, msg, outbox).await });
    };
    drop(outbox);
    if let Ending::ClientDone = ending {
        // Ends when every handler has answered (their senders are gone), or on
        // a close asked for, or when the client stops reading.
        let _ = writing.await;
    } else {
        writing.abort();
    }
    // Dropping `handlers` aborts the ones still waiting; dropping the halves closes.
}

async fn answer(host: &Host, kind: Kind, req: Message, outbox: mpsc::Sender<Out>) {
    let out = match host.handle(kind, &req) {
        Reply::Send(answer, delay) => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            // Answers are built from fields the decoder accepted; should one
            // not encode, the host gives up on the connection.
            codec::encode(&answer).map_or(Out::Close, Out::Frame)
        }
        Reply::Drop => Out::Close,
        Reply::Junk => Out::Frame(JUNK.to_vec()),
        Reply::Mute => return,
    };
    // An error means the connection is closing: the answer has nowhere to go.
    let _ = outbox.send(out).await;
}

/// The next frame's message bytes, or `None` when the client closed between frames.
async fn read_frame(reader: &mut OwnedReadHalf) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match reader.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    // At most 64 KiB, as the header says: no bigger allocation is possible.
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    reader.read_exact(&mut body).await?;
    Ok(Some(body))
}

/// Writes answers until told to close, the senders are all gone, or the
/// client stops reading. Returning drops the write half, which sends FIN.
async fn write_frames(mut writer: OwnedWriteHalf, mut answers: mpsc::Receiver<Out>) {
    while let Some(Out::Frame(body)) = answers.recv().await {
        let Ok(len) = u16::try_from(body.len()) else {
            return;
        };
        let mut frame = Vec::with_capacity(2 + body.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&body);
        if writer.write_all(&frame).await.is_err() {
            return;
        }
    }
}
