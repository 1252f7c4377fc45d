//! Unit tests of the record file format: round trip, a cut at every byte, flipped bytes, absurd lengths.

use super::*;

fn header(max_message: u32, typed: bool) -> Header {
    Header {
        topic: "orders".into(),
        generation: 3,
        payload_type: typed.then(|| TypeInfo { name: "Order".into(), hash: 0x1234_5678_9abc_def0 }),
        geometry: GeometryWire {
            capacity: 64,
            entry_bytes: 64,
            max_message,
            region_bytes: 1 << 20,
            max_publishers: 4,
            max_subscribers: 8,
            max_groups: 2,
        },
        start_unix_ns: 1_764_640_505_000_000_001,
        lossy: typed,
    }
}

/// Payloads of 0, 1, 5 and `max` bytes.
fn payloads(max: usize) -> Vec<Vec<u8>> {
    vec![Vec::new(), vec![7], b"hello".to_vec(), (0..max).map(|i| i as u8).collect()]
}

/// A recording of `payloads(max)` with a gap after the second, and the file offsets where each record starts
/// (the header's length first, the file's length last).
fn recording(max: u32) -> (Vec<u8>, Vec<u64>) {
    let mut w = Writer::new(Vec::new(), &header(max, true)).unwrap();
    let mut bounds = vec![w.w.len() as u64];
    for (i, p) in payloads(max as usize).iter().enumerate() {
        let m = Msg {
            seq: i as u64 * 2,
            publisher: i as u32,
            timestamp_ns: 1000 + i as u64,
            offset_ns: 50 * i as u64,
            payload: p,
        };
        w.message(&m).unwrap();
        bounds.push(w.w.len() as u64);
        if i == 1 {
            w.gap(3, 5, 77).unwrap();
            bounds.push(w.w.len() as u64);
        }
    }
    let file = w.finish(999).unwrap();
    bounds.push(file.len() as u64);
    (file, bounds)
}

/// Every record of `file` until the end or a cut, owned, with the cut.
fn read_all(file: &[u8]) -> Result<(Header, Vec<String>, Option<Cut>), HeaderError> {
    let mut r = Reader::new(file)?;
    let mut seen = Vec::new();
    loop {
        match r.next_record() {
            Ok(Some(rec)) => seen.push(format!("{rec:?}")),
            Ok(None) => return Ok((r.header().clone(), seen, None)),
            Err(c) => {
                assert_eq!(r.next_record().unwrap_err(), c, "a cut stays a cut");
                return Ok((r.header().clone(), seen, Some(c)));
            }
        }
    }
}

#[test]
fn a_recording_reads_back_as_written() {
    let (file, _) = recording(300);
    let mut r = Reader::new(&file[..]).unwrap();
    assert_eq!(r.header(), &header(300, true));
    for (i, p) in payloads(300).iter().enumerate() {
        let Some(Record::Message(m)) = r.next_record().unwrap() else { panic!("message {i}") };
        assert_eq!(
            (m.seq, m.publisher, m.timestamp_ns, m.offset_ns),
            (i as u64 * 2, i as u32, 1000 + i as u64, 50 * i as u64)
        );
        assert_eq!(m.payload, &p[..]);
        if i == 1 {
            assert_eq!(r.next_record().unwrap(), Some(Record::Gap { lost: 3, next_seq: 5, offset_ns: 77 }));
        }
    }
    assert_eq!(r.next_record().unwrap(), Some(Record::End { messages: 4, lost: 3, offset_ns: 999 }));
    assert_eq!(r.next_record().unwrap(), None);
    assert_eq!(r.next_record().unwrap(), None, "the end stays the end");
    assert_eq!(r.offset, file.len() as u64);
    let untyped = header(16, false);
    let (back, len) = Header::decode(&mut &untyped.encode()[..]).unwrap();
    assert_eq!((back, len), (untyped.clone(), untyped.encode().len() as u64));
}

#[test]
fn a_cut_at_every_byte_keeps_the_whole_records_and_says_where() {
    let (file, bounds) = recording(40);
    let header_len = bounds[0];
    for cut in 0..file.len() as u64 {
        let part = &file[..cut as usize];
        if cut < header_len {
            assert!(matches!(read_all(part), Err(HeaderError::Truncated(n)) if n == cut), "cut at {cut}");
            continue;
        }
        let (_, seen, stop) = read_all(part).unwrap();
        let whole = bounds[1..].iter().filter(|&&b| b <= cut).count();
        assert_eq!(seen.len(), whole, "cut at {cut}: {seen:?}");
        let at = bounds[whole];
        let stop = stop.unwrap_or_else(|| panic!("cut at {cut} read as whole"));
        assert_eq!(stop.offset, at, "cut at {cut}");
        if cut == at {
            assert_eq!(stop.why, CutReason::NoEnd, "cut at {cut}");
        } else {
            assert!(matches!(stop.why, CutReason::Truncated { have, .. } if have == cut - at), "cut at {cut}: {stop}");
        }
    }
    let (_, seen, stop) = read_all(&file).unwrap();
    assert_eq!((seen.len(), stop), (bounds.len() - 1, None));
}

#[test]
fn a_flipped_byte_is_found_at_its_record() {
    let (file, bounds) = recording(40);
    for i in 0..file.len() {
        let mut bad = file.clone();
        bad[i] ^= 0x20;
        match read_all(&bad) {
            Err(e) => assert!((i as u64) < bounds[0], "byte {i}: header error {e} for a record byte"),
            Ok((_, seen, stop)) => {
                let record = bounds[1..].iter().filter(|&&b| b <= i as u64).count();
                let stop = stop.unwrap_or_else(|| panic!("byte {i} flipped unnoticed"));
                assert_eq!((seen.len(), stop.offset), (record, bounds[record]), "byte {i}: {stop}");
            }
        }
    }
    // A payload byte: the checksum catches it (the length and kind are intact).
    let mut bad = file.clone();
    let payload_at = (bounds[3] + RECORD_FIXED as u64 + 1) as usize;
    bad[payload_at] ^= 1;
    let (_, seen, stop) = read_all(&bad).unwrap();
    assert_eq!(seen.len(), 3, "m0, m1 and the gap");
    assert!(matches!(stop.unwrap().why, CutReason::Checksum { .. }));
    // A header byte: the header's own checksum.
    let mut bad = file.clone();
    bad[20] ^= 1;
    assert!(matches!(read_all(&bad), Err(HeaderError::Corrupt(m)) if m.contains("checksum")));
}

#[test]
fn absurd_lengths_are_refused_without_allocating_them() {
    // The header allows 4 GiB messages; a record claims almost that, with 10 bytes behind it.
    let mut file = header(u32::MAX, false).encode();
    let mut fixed = [0u8; RECORD_FIXED];
    fixed[..4].copy_from_slice(&(u32::MAX - 4).to_le_bytes());
    fixed[4] = KIND_MESSAGE;
    file.extend_from_slice(&fixed);
    file.extend_from_slice(&[0; 10]);
    let mut r = Reader::new(&file[..]).unwrap();
    let c = r.next_record().unwrap_err();
    assert!(matches!(c.why, CutReason::Truncated { have: 46, .. }), "{c}");
    assert!(r.buf.capacity() < 1 << 20, "allocated {} bytes", r.buf.capacity());
    // Longer than the header's largest message, or a gap of the wrong size: refused before any read.
    let mut file = header(16, false).encode();
    fixed[..4].copy_from_slice(&17u32.to_le_bytes());
    file.extend_from_slice(&fixed);
    let c = Reader::new(&file[..]).unwrap().next_record().unwrap_err();
    assert_eq!(c.why, CutReason::BadLength { kind: "message", len: 17, max: 16 });
    let at = file.len() - RECORD_FIXED;
    file[at + 4] = KIND_GAP;
    let c = Reader::new(&file[..]).unwrap().next_record().unwrap_err();
    assert_eq!(c.why, CutReason::BadLength { kind: "gap", len: 17, max: 8 });
    file[at + 4] = 9;
    assert_eq!(Reader::new(&file[..]).unwrap().next_record().unwrap_err().why, CutReason::BadKind(9));
    // A header body that claims 4 GiB.
    let mut file = header(16, false).encode();
    file[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(Header::decode(&mut &file[..]), Err(HeaderError::Corrupt(m)) if m.contains("at most")));
}

#[test]
fn other_files_are_named_as_such() {
    assert!(matches!(Reader::new(&b"hello world, not a recording"[..]), Err(HeaderError::NotARecording)));
    assert!(matches!(Reader::new(&b"SHM"[..]), Err(HeaderError::Truncated(3))));
    let mut v2 = header(16, false).encode();
    v2[8] = 2;
    assert!(matches!(Reader::new(&v2[..]), Err(HeaderError::Version(2))));
    let (mut file, _) = recording(16);
    file.push(0);
    let (_, seen, stop) = read_all(&file).unwrap();
    assert_eq!((seen.len(), stop.map(|c| c.why)), (6, Some(CutReason::AfterEnd)));
}
