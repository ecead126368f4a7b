//! A simulated ISO 8583 card host that speaks exactly the demo host layout
//! (`conf/iso8583/demo-host.toml` on the gateway's side): 2-byte big-endian
//! length framing, ASCII MTI, binary bitmaps, ASCII fields.
//!
//! It approves or declines 0100/0200 by simple rules, reverses (0400) what it
//! approved, answers echoes (0800), and misbehaves on request through the
//! terminal id (field 41) so the gateway's link layer can be tested against
//! slow, silent, rude and broken hosts. See `host` for the rules.

mod codec;
mod connection;
mod host;

use std::io::ErrorKind;
use std::sync::Arc;

use host::{Host, APPROVALS_KEPT};

/// Serves the card host on an already-bound listener until accepting fails
/// for a reason other than one connection's trouble. Approvals are shared by
/// all connections, so a reversal may come on another link.
pub async fn serve_iso8583(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    let host = Arc::new(Host::new(APPROVALS_KEPT));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) if one_connection_failed(&e) => continue,
            Err(e) => return Err(e),
        };
        // Small frames, one per answer: do not let Nagle hold them back.
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection::serve(stream, host.clone()));
    }
}

/// Accept errors about the connection being accepted, not the listener.
fn one_connection_failed(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionAborted
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionRefused
            | ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::net::SocketAddr;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::codec::{decode, encode, Message};
    use super::*;

    /// A safety net so a broken server fails the test instead of hanging it;
    /// nothing here depends on how fast answers come.
    const PATIENCE: Duration = Duration::from_secs(20);
    const TIME: &str = "1206143015";

    async fn start() -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_iso8583(listener));
        addr
    }

    struct Client(TcpStream);

    impl Client {
        async fn connect(addr: SocketAddr) -> Client {
            Client(TcpStream::connect(addr).await.unwrap())
        }

        async fn send_raw(&mut self, body: &[u8]) {
            let mut frame = u16::try_from(body.len()).unwrap().to_be_bytes().to_vec();
            frame.extend_from_slice(body);
            self.0.write_all(&frame).await.unwrap();
        }

        async fn send(&mut self, msg: &Message) {
            self.send_raw(&encode(msg).unwrap()).await;
        }

        /// The next frame's bytes, or `None` once the host has closed.
        async fn recv_raw(&mut self) -> Option<Vec<u8>> {
            tokio::time::timeout(PATIENCE, async {
                let mut len = [0u8; 2];
                self.0.read_exact(&mut len).await.ok()?;
                let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
                self.0.read_exact(&mut body).await.ok()?;
                Some(body)
            })
            .await
            .expect("the host neither answered nor closed")
        }

        async fn recv(&mut self) -> Message {
            decode(&self.recv_raw().await.expect("connection closed")).unwrap()
        }
    }

    fn auth(pan: &str, amount: &str, stan: &str, terminal: &str) -> Message {
        let mut m = Message::new(*b"0100");
        m.set(2, pan);
        m.set(3, "000000");
        m.set(4, amount);
        m.set(7, TIME);
        m.set(11, stan);
        m.set(12, "143015");
        m.set(13, "1206");
        m.set(37, format!("5341140{stan:0>5}").get(..12).unwrap());
        m.set(41, terminal);
        m.set(42, "MERCHANT 000001");
        m.set(49, "978");
        m
    }

    fn field(m: &Message, no: u8) -> String {
        String::from_utf8(m.get(no).unwrap_or_default().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn authorisations_over_tcp() {
        let mut c = Client::connect(start().await).await;
        let req = auth("4111111111111111", "000000001250", "000001", "TERM0001");
        c.send(&req).await;
        let answer = c.recv().await;
        assert_eq!(answer.mti, *b"0110");
        assert_eq!(field(&answer, 39), "00");
        assert_eq!(field(&answer, 38).len(), 6);
        for no in [2, 3, 4, 7, 11, 12, 13, 37, 41, 42, 49] {
            assert_eq!(answer.get(no), req.get(no), "field {no}");
        }

        let mut financial = auth("4111111110080119", "000000001250", "000002", "TERM0001");
        financial.mti = *b"0200";
        c.send(&financial).await;
        let answer = c.recv().await;
        assert_eq!((answer.mti, field(&answer, 39)), (*b"0210", "05".into()));
        assert_eq!(answer.get(38), None);
    }

    #[tokio::test]
    async fn echo_over_tcp() {
        let mut c = Client::connect(start().await).await;
        let mut echo = Message::new(*b"0800");
        echo.set(7, TIME);
        echo.set(11, "000009");
        echo.set(70, "301");
        c.send(&echo).await;
        let answer = c.recv().await;
        assert_eq!(answer.mti, *b"0810");
        assert_eq!(
            [7, 11, 70, 39].map(|no| field(&answer, no)),
            [TIME, "000009", "301", "00"]
        );
    }

    /// A slow answer does not hold back the ones behind it.
    #[tokio::test]
    async fn answers_go_out_as_they_are_ready() {
        let mut c = Client::connect(start().await).await;
        let pan = "4111111111111111";
        c.send(&auth(pan, "000000000100", "000001", "D9999999"))
            .await;
        c.send(&auth(pan, "000000000100", "000002", "D0000200"))
            .await;
        c.send(&auth(pan, "000000000100", "000003", "TERM0001"))
            .await;
        assert_eq!(field(&c.recv().await, 11), "000003");
        assert_eq!(field(&c.recv().await, 11), "000002");
    }

    #[tokio::test]
    async fn many_pipelined_requests_are_all_answered() {
        let mut c = Client::connect(start().await).await;
        let stans: HashSet<String> = (1..=200).map(|n| format!("{n:06}")).collect();
        for stan in &stans {
            c.send(&auth("4111111111111111", "000000000100", stan, "TERM0001"))
                .await;
        }
        let mut answered = HashSet::new();
        for _ in 0..stans.len() {
            let answer = c.recv().await;
            assert_eq!(field(&answer, 39), "00");
            answered.insert(field(&answer, 11));
        }
        assert_eq!(answered, stans);
    }

    fn reversal(stan: &str, original_stan: &str) -> Message {
        let mut m = Message::new(*b"0400");
        m.set(2, "4111111111111111");
        m.set(4, "000000001250");
        m.set(7, "1206143520");
        m.set(11, stan);
        m.set(41, "TERM0001");
        m.set(
            90,
            format!("0100{original_stan}{TIME}0000012345600000000000"),
        );
        m
    }

    /// The answer was lost (the connection dropped), the approval was not: a
    /// reversal on a new connection finds it.
    #[tokio::test]
    async fn drop_closes_and_the_reversal_finds_the_approval_elsewhere() {
        let addr = start().await;
        let mut c = Client::connect(addr).await;
        c.send(&auth(
            "4111111111111111",
            "000000001250",
            "000500",
            "DROP0000",
        ))
        .await;
        assert_eq!(c.recv_raw().await, None);

        let mut other = Client::connect(addr).await;
        other.send(&reversal("000501", "000500")).await;
        let answer = other.recv().await;
        assert_eq!(answer.mti, *b"0410");
        assert_eq!(field(&answer, 39), "00");
        assert_eq!(answer.get(90), reversal("000501", "000500").get(90));
        other.send(&reversal("000502", "000499")).await;
        assert_eq!(field(&other.recv().await, 39), "25");
    }

    #[tokio::test]
    async fn junk_and_mute() {
        let mut c = Client::connect(start().await).await;
        c.send(&auth(
            "4111111111111111",
            "000000000100",
            "000001",
            "JUNK0000",
        ))
        .await;
        let junk = c.recv_raw().await.unwrap();
        assert!(decode(&junk).is_err());

        c.send(&auth(
            "4111111111111111",
            "000000000100",
            "000002",
            "MUTE0000",
        ))
        .await;
        c.send(&auth(
            "4111111111111111",
            "000000000100",
            "000003",
            "TERM0001",
        ))
        .await;
        assert_eq!(field(&c.recv().await, 11), "000003");
    }

    /// Pending answers still go out after the client closes its sending side.
    #[tokio::test]
    async fn half_close_still_gets_answers() {
        let mut c = Client::connect(start().await).await;
        c.send(&auth(
            "4111111111111111",
            "000000000100",
            "000001",
            "D0000050",
        ))
        .await;
        c.0.shutdown().await.unwrap();
        assert_eq!(field(&c.recv().await, 11), "000001");
        assert_eq!(c.recv_raw().await, None);
    }

    #[tokio::test]
    async fn what_the_host_cannot_read_closes_the_connection() {
        let addr = start().await;
        let mut unknown_mti = auth("4111111111111111", "000000000100", "000001", "TERM0001");
        unknown_mti.mti = *b"0110";
        let mut unknown_field = encode(&unknown_mti).unwrap();
        unknown_field[..4].copy_from_slice(b"0100");
        unknown_field[4] |= 0x08; // bit 5: not in the layout
        let frames: [Vec<u8>; 4] = [
            encode(&unknown_mti).unwrap(),
            unknown_field,
            b"garbage".to_vec(),
            Vec::new(),
        ];
        for frame in frames {
            let mut c = Client::connect(addr).await;
            c.send_raw(&frame).await;
            assert_eq!(c.recv_raw().await, None);
        }
        // The host itself carries on.
        let mut c = Client::connect(addr).await;
        c.send(&auth(
            "4111111111111111",
            "000000000100",
            "000002",
            "TERM0001",
        ))
        .await;
        assert_eq!(field(&c.recv().await, 39), "00");
    }
}
