//! JSON answers kept by the protobuf bytes they were made from, for the reads asked most often
//! (`GetScores`): while a service keeps sending the same bytes for the same request, the JSON
//! made from them the first time is sent again, without decoding or writing it anew. The
//! service is still called every time, with the caller's token, so it alone decides what each
//! caller gets; a caller only ever receives the JSON of the very bytes sent to them.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Mutex;

use axum::body::Bytes;
use prost::bytes::Buf;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};

/// A codec that sends a message and receives the answer's bytes undecoded.
#[derive(Debug)]
pub struct RawAnswer<Req>(PhantomData<Req>);

impl<Req> Default for RawAnswer<Req> {
    fn default() -> Self {
        RawAnswer(PhantomData)
    }
}

#[derive(Debug, Default)]
pub struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

impl<Req: prost::Message + Send + 'static> Codec for RawAnswer<Req> {
    type Encode = Req;
    type Decode = Bytes;
    type Encoder = tonic_prost::ProstEncoder<Req>;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

/// The most requests whose last answer is kept; past it every kept answer is let go (the
/// common requests come back at once).
const KEPT_REQUESTS: usize = 256;

/// A request: its method and its encoded message.
type Request = (&'static str, Vec<u8>);

/// The last answer to a request: its bytes and the JSON made from them.
#[derive(Debug)]
struct Kept {
    raw: Bytes,
    json: Bytes,
}

/// The last answer per request.
#[derive(Debug, Default)]
pub struct Answers {
    kept: Mutex<HashMap<Request, Kept>>,
}

impl Answers {
    /// The JSON kept for `request` if it was made from exactly `raw`.
    pub fn get(&self, method: &'static str, request: &[u8], raw: &[u8]) -> Option<Bytes> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.get(&(method, request.to_vec()))
            .filter(|k| k.raw.as_ref() == raw)
            .map(|k| k.json.clone())
    }

    pub fn put(&self, method: &'static str, request: Vec<u8>, raw: Bytes, json: Bytes) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= KEPT_REQUESTS && !kept.contains_key(&(method, request.clone())) {
            kept.clear();
        }
        kept.insert((method, request), Kept { raw, json });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_kept_only_for_the_same_bytes() {
        let a = Answers::default();
        a.put(
            "GetScores",
            b"req".to_vec(),
            Bytes::from_static(b"raw1"),
            Bytes::from_static(b"{\"a\":1}"),
        );
        assert_eq!(
            a.get("GetScores", b"req", b"raw1").as_deref(),
            Some(b"{\"a\":1}".as_slice())
        );
        assert!(
            a.get("GetScores", b"req", b"raw2").is_none(),
            "changed answer"
        );
        assert!(
            a.get("GetScores", b"other", b"raw1").is_none(),
            "other request"
        );
        assert!(
            a.get("GetSummary", b"req", b"raw1").is_none(),
            "other method"
        );
    }
}
