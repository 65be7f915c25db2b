//! A message encoded in advance.

use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{DecodeContext, WireType};

/// A message's protobuf encoding, sent as it is: a server that keeps answers it has already
/// encoded hands them out without building or encoding them again. Only ever encoded (a server
/// never decodes its own answers); decoding one skips every field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoded(pub Bytes);

impl Encoded {
    /// Encodes `message` now.
    pub fn of(message: &impl prost::Message) -> Encoded {
        Encoded(Bytes::from(message.encode_to_vec()))
    }
}

impl prost::Message for Encoded {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoring::v1 as ps;
    use prost::Message as _;

    #[test]
    fn an_encoded_message_is_sent_byte_for_byte() {
        let m = ps::OrgUnitScores {
            org_unit: "nanhai.guicheng".into(),
            name: "桂城街道".into(),
            items: vec![ps::ItemScore {
                code: "1.1".into(),
                title: "组织领导".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let e = Encoded::of(&m);
        assert_eq!(e.encoded_len(), m.encoded_len());
        let sent = e.encode_to_vec();
        assert_eq!(sent, m.encode_to_vec());
        assert_eq!(ps::OrgUnitScores::decode(sent.as_slice()).unwrap(), m);
        // Length-delimited, as a response body frames it.
        let framed = e.encode_length_delimited_to_vec();
        assert_eq!(
            ps::OrgUnitScores::decode_length_delimited(framed.as_slice()).unwrap(),
            m
        );
    }
}
