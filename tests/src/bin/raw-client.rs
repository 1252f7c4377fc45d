//! A tiny client that speaks the control protocol directly, to send what `bus-client` never would (the tests run
//! it as `nobody` to attack a root daemon).
//!
//! `raw-client SOCKET CLIENT_NAME KIND TOPIC [ARG...]` sends `Hello` with `CLIENT_NAME`, then one lossy
//! `OpenSubscriber`:
//! * `resume TOPIC GENERATION SLOT`: re-registers subscriber slot `SLOT` of generation `GENERATION` with an
//!   all-zero resume token (the attacker does not know the owner's);
//! * `typed TOPIC TYPE_NAME`: a typed subscriber with payload type `TYPE_NAME` (hash 1);
//! * `group TOPIC GROUP_NAME`: a member of group `GROUP_NAME`.
//!
//! Prints `granted` or `refused KIND: MESSAGE` (or `hello refused ...`), then holds the connection (and so the
//! lease) until its standard input closes.
use shmbus_proto::frame::{self, FrameReader};
use shmbus_proto::msg::{Resume, ResumeToken, SubMode, TypeInfo};
use shmbus_proto::{Request, Response, PROTOCOL_VERSION};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

fn reply(s: &mut UnixStream, r: &mut FrameReader) -> Response {
    loop {
        if let Some(resp) = r.next_frame::<Response>().expect("a well-formed reply") {
            return resp;
        }
        let mut b = [0u8; 4096];
        let n = s.read(&mut b).expect("read a reply");
        assert!(n > 0, "the daemon closed the connection");
        r.push(&b[..n]);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (socket, client, kind, topic) = (&args[1], &args[2], &args[3], &args[4]);
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = FrameReader::new();
    let hello =
        Request::Hello { protocol: PROTOCOL_VERSION, layout: shmbus_ring::LAYOUT_VERSION, client: client.clone() };
    s.write_all(&frame::encode(&hello).unwrap()).unwrap();
    match reply(&mut s, &mut r) {
        Response::Hello { .. } => {}
        Response::Error { kind, message } => {
            println!("hello refused {kind:?}: {message}");
            return;
        }
        other => panic!("unexpected reply to hello: {other:?}"),
    }
    let (mut mode, mut payload_type, mut resume) = (SubMode::Lossy, None, None);
    match kind.as_str() {
        "resume" => {
            let (generation, slot) = (args[5].parse().expect("generation"), args[6].parse().expect("slot"));
            resume = Some(Resume { generation, slot, token: ResumeToken::default() });
        }
        "typed" => payload_type = Some(TypeInfo { name: args[5].clone(), hash: 1 }),
        "group" => mode = SubMode::Group { name: args[5].clone() },
        other => panic!("unknown kind {other}"),
    }
    let open = Request::OpenSubscriber { topic: topic.clone(), mode, from_oldest: false, payload_type, resume };
    s.write_all(&frame::encode(&open).unwrap()).unwrap();
    match reply(&mut s, &mut r) {
        Response::Lease(_) => println!("granted"),
        Response::Error { kind, message } => println!("refused {kind:?}: {message}"),
        other => panic!("unexpected reply to open: {other:?}"),
    }
    std::io::stdout().flush().unwrap();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
}
