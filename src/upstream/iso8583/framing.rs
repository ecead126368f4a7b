//! How messages are delimited on a link: a length header in front of each one.

use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The length header in front of every message on a link (the header's own bytes not
/// counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum Framing {
    /// Two bytes, big-endian binary: the most common header on card links.
    #[default]
    #[serde(rename = "binary2")]
    Binary2,
    /// Four ASCII digits.
    #[serde(rename = "ascii4")]
    Ascii4,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("message of {0} bytes is larger than the link allows")]
    TooLarge(usize),
    #[error("length header is not 4 ASCII digits")]
    BadHeader,
}

impl Framing {
    /// The largest message this header can carry.
    fn header_max(self) -> usize {
        match self {
            Framing::Binary2 => u16::MAX as usize,
            Framing::Ascii4 => 9_999,
        }
    }

    /// `message` with its length header in front. `max` is the link's own cap.
    pub fn frame(self, message: &[u8], max: usize) -> Result<Vec<u8>, FrameError> {
        let len = message.len();
        if len > max.min(self.header_max()) {
            return Err(FrameError::TooLarge(len));
        }
        let mut framed = Vec::with_capacity(len + 4);
        match self {
            Framing::Binary2 => framed.extend_from_slice(&(len as u16).to_be_bytes()),
            Framing::Ascii4 => framed.extend_from_slice(format!("{len:04}").as_bytes()),
        }
        framed.extend_from_slice(message);
        Ok(framed)
    }

    /// Reads the next message. `Ok(None)` when the peer closed the link between messages.
    /// A header announcing more than `max` bytes is an error before anything is allocated.
    pub async fn read<R: AsyncRead + Unpin>(
        self,
        reader: &mut R,
        max: usize,
    ) -> std::io::Result<Option<Vec<u8>>> {
        let mut header = [0u8; 4];
        let header = &mut header[..self.header_len()];
        match reader.read_exact(header).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let len = self.parse_header(header).map_err(invalid)?;
        if len > max {
            return Err(invalid(FrameError::TooLarge(len)));
        }
        let mut message = vec![0; len];
        reader.read_exact(&mut message).await?;
        Ok(Some(message))
    }

    fn header_len(self) -> usize {
        match self {
            Framing::Binary2 => 2,
            Framing::Ascii4 => 4,
        }
    }

    fn parse_header(self, header: &[u8]) -> Result<usize, FrameError> {
        match self {
            Framing::Binary2 => Ok(u16::from_be_bytes([header[0], header[1]]) as usize),
            Framing::Ascii4 => {
                if !header.iter().all(u8::is_ascii_digit) {
                    return Err(FrameError::BadHeader);
                }
                Ok(header.iter().fold(0, |n, d| n * 10 + usize::from(d - b'0')))
            }
        }
    }
}

fn invalid(e: FrameError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_back(
        framing: Framing,
        bytes: &[u8],
        max: usize,
    ) -> std::io::Result<Option<Vec<u8>>> {
        framing.read(&mut &bytes[..], max).await
    }

    #[tokio::test]
    async fn binary2_round_trip_and_header() {
        let framed = Framing::Binary2.frame(b"0800abc", 100).unwrap();
        assert_eq!(&framed[..2], &[0, 7]);
        let back = read_back(Framing::Binary2, &framed, 100).await.unwrap();
        assert_eq!(back.as_deref(), Some(&b"0800abc"[..]));
    }

    #[tokio::test]
    async fn ascii4_round_trip_and_header() {
        let framed = Framing::Ascii4.frame(b"0800abc", 100).unwrap();
        assert_eq!(&framed[..4], b"0007");
        let back = read_back(Framing::Ascii4, &framed, 100).await.unwrap();
        assert_eq!(back.as_deref(), Some(&b"0800abc"[..]));
    }

    #[tokio::test]
    async fn oversized_and_malformed_headers_are_errors() {
        assert_eq!(
            Framing::Binary2.frame(&[0; 11], 10),
            Err(FrameError::TooLarge(11))
        );
        // Announces 65535 bytes: refused before allocating them.
        assert!(read_back(Framing::Binary2, &[0xff, 0xff, 1], 8192)
            .await
            .is_err());
        assert!(read_back(Framing::Ascii4, b"00x1a", 8192).await.is_err());
        // Closed between messages: a clean end, not an error.
        assert_eq!(read_back(Framing::Binary2, &[], 8192).await.unwrap(), None);
        // Closed inside a message: an error.
        assert!(read_back(Framing::Binary2, &[0, 5, 1, 2], 8192)
            .await
            .is_err());
    }
}
