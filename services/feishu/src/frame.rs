//! The long connection's frames: protobuf `pbbp2.Frame` (proto2, as the
//! official SDKs define it), derived with prost. A frame is a control
//! frame (`method` 0: ping, pong) or a data frame (1: an event, a card),
//! its kind in the `type` header.

use prost::Message;

#[derive(Clone, PartialEq, Message)]
pub struct Header {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, required, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Frame {
    #[prost(uint64, required, tag = "1")]
    pub seq_id: u64,
    #[prost(uint64, required, tag = "2")]
    pub log_id: u64,
    #[prost(int32, required, tag = "3")]
    pub service: i32,
    #[prost(int32, required, tag = "4")]
    pub method: i32,
    #[prost(message, repeated, tag = "5")]
    pub headers: Vec<Header>,
    #[prost(string, optional, tag = "6")]
    pub payload_encoding: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub payload_type: Option<String>,
    #[prost(bytes = "vec", optional, tag = "8")]
    pub payload: Option<Vec<u8>>,
    #[prost(string, optional, tag = "9")]
    pub log_id_new: Option<String>,
}

pub const CONTROL: i32 = 0;
pub const DATA: i32 = 1;

impl Frame {
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.key == key)
            .map(|h| h.value.as_str())
    }

    pub fn set_header(&mut self, key: &str, value: &str) {
        match self.headers.iter_mut().find(|h| h.key == key) {
            Some(h) => h.value = value.to_string(),
            None => self.headers.push(Header {
                key: key.into(),
                value: value.into(),
            }),
        }
    }

    /// A ping for the connection's service.
    pub fn ping(service: i32) -> Frame {
        let mut f = Frame {
            service,
            method: CONTROL,
            ..Frame::default()
        };
        f.set_header("type", "ping");
        f
    }

    /// The acknowledgement of a data frame: the frame itself, its payload
    /// `{"code":200}` and `biz_rt` the milliseconds taken.
    pub fn ack(&self, biz_rt_ms: u64) -> Frame {
        let mut f = self.clone();
        f.set_header("biz_rt", &biz_rt_ms.to_string());
        f.payload = Some(br#"{"code":200,"headers":null,"data":null}"#.to_vec());
        f
    }

    pub fn encode(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    pub fn decode_bytes(b: &[u8]) -> Result<Frame, String> {
        Frame::decode(b).map_err(|e| format!("not a pbbp2.Frame: {e}"))
    }
}

/// Events split over several frames (`sum` > 1), put back together by
/// `message_id` and `seq`.
/// The parts of one event received so far, and when the first came.
type Parts = (Vec<Option<Vec<u8>>>, std::time::Instant);

#[derive(Default)]
pub struct Reassembly {
    parts: std::collections::HashMap<String, Parts>,
}

/// How long a partial event is kept waiting for its other frames.
const PARTS_KEPT: std::time::Duration = std::time::Duration::from_secs(30);

impl Reassembly {
    /// The whole payload once every part of `message_id` arrived.
    pub fn add(
        &mut self,
        message_id: &str,
        sum: usize,
        seq: usize,
        payload: Vec<u8>,
    ) -> Option<Vec<u8>> {
        if sum <= 1 {
            return Some(payload);
        }
        let now = std::time::Instant::now();
        self.parts
            .retain(|_, (_, at)| now.duration_since(*at) < PARTS_KEPT);
        if seq >= sum || sum > 1000 {
            return None;
        }
        let entry = self
            .parts
            .entry(message_id.to_string())
            .or_insert_with(|| (vec![None; sum], now));
        if entry.0.len() != sum {
            return None;
        }
        entry.0[seq] = Some(payload);
        if entry.0.iter().all(Option::is_some) {
            let (parts, _) = self.parts.remove(message_id)?;
            return Some(parts.into_iter().flatten().flatten().collect());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_acks_keep_the_frame() {
        let mut f = Frame {
            seq_id: 7,
            log_id: 9,
            service: 42,
            method: DATA,
            payload: Some(b"{}".to_vec()),
            ..Frame::default()
        };
        f.set_header("type", "event");
        f.set_header("message_id", "m1");
        let back = Frame::decode_bytes(&f.encode()).unwrap();
        assert_eq!(back, f);
        let a = f.ack(3);
        assert_eq!(
            (a.seq_id, a.service, a.header("message_id")),
            (7, 42, Some("m1"))
        );
        assert_eq!(a.header("biz_rt"), Some("3"));
        assert!(a.payload.unwrap().starts_with(br#"{"code":200"#));
        // Required fields are on the wire even when zero.
        let p = Frame::ping(0).encode();
        assert!(Frame::decode_bytes(&p).is_ok());
        assert!(Frame::decode_bytes(b"\xff\xff").is_err());
    }

    #[test]
    fn split_events_are_put_back_in_order() {
        let mut r = Reassembly::default();
        assert_eq!(r.add("a", 1, 0, b"x".to_vec()), Some(b"x".to_vec()));
        assert_eq!(r.add("b", 3, 2, b"3".to_vec()), None);
        assert_eq!(r.add("b", 3, 0, b"1".to_vec()), None);
        assert_eq!(r.add("b", 3, 1, b"2".to_vec()), Some(b"123".to_vec()));
        assert_eq!(r.add("c", 2, 5, b"bad".to_vec()), None);
    }
}
