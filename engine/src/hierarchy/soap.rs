//! SOAP 1.1 framing for MS-WSUSSS: envelopes, faults with the protocol's `ErrorCode`, and a
//! small element tree for reading message bodies (namespace-aware, prefixes ignored).

use quick_xml::escape::escape;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// The SOAP 1.1 envelope namespace.
pub const NS_SOAP: &str = "http://schemas.xmlsoap.org/soap/envelope/";
/// The server-sync web service's namespace (bodies and SOAPAction prefix).
pub const NS_SYNC: &str = "http://www.microsoft.com/SoftwareDistribution";
/// The DSS authorization web service's namespace.
pub const NS_AUTH: &str = "http://www.microsoft.com/SoftwareDistribution/Server/DssAuthWebService";
/// patchsync's extension elements (expirations, removals, completeness of a listing): a
/// WSUS client's serializer skips elements of a namespace it does not know.
pub const NS_EXT: &str = "urn:patchsync:server-sync:1";

/// The `ErrorCode` values of MS-WSUSSS 2.2.9.3 this implementation sends or reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidParameters,
    InvalidCookie,
    InternalServerError,
    IncompatibleProtocolVersion,
    InvalidAuthorizationCookie,
    ServerChanged,
    ServerBusy,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidParameters => "InvalidParameters",
            ErrorCode::InvalidCookie => "InvalidCookie",
            ErrorCode::InternalServerError => "InternalServerError",
            ErrorCode::IncompatibleProtocolVersion => "IncompatibleProtocolVersion",
            ErrorCode::InvalidAuthorizationCookie => "InvalidAuthorizationCookie",
            ErrorCode::ServerChanged => "ServerChanged",
            ErrorCode::ServerBusy => "ServerBusy",
        }
    }

    pub fn parse(s: &str) -> Option<ErrorCode> {
        [
            ErrorCode::InvalidParameters,
            ErrorCode::InvalidCookie,
            ErrorCode::InternalServerError,
            ErrorCode::IncompatibleProtocolVersion,
            ErrorCode::InvalidAuthorizationCookie,
            ErrorCode::ServerChanged,
            ErrorCode::ServerBusy,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// A fault as the server sends it: the error code, a message, and the operation.
#[derive(Debug, Clone)]
pub struct Fault {
    pub code: Option<ErrorCode>,
    pub message: String,
}

/// Wraps a body's XML in a SOAP 1.1 envelope.
pub fn envelope(body: &str) -> String {
    let mut s = String::with_capacity(body.len() + 300);
    s.push_str(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope \
         xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
         xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\"><soap:Body>",
    );
    s.push_str(body);
    s.push_str("</soap:Body></soap:Envelope>");
    s
}

/// A SOAP 1.1 fault with the protocol's detail (`ErrorCode`, `Message`, `ID`, `Method`).
pub fn fault(code: ErrorCode, message: &str, action: &str) -> String {
    let client = matches!(
        code,
        ErrorCode::InvalidParameters
            | ErrorCode::InvalidCookie
            | ErrorCode::InvalidAuthorizationCookie
            | ErrorCode::IncompatibleProtocolVersion
    );
    envelope(&format!(
        "<soap:Fault><faultcode>soap:{}</faultcode><faultstring>{}</faultstring>\
         <detail><ErrorCode>{}</ErrorCode><Message>{}</Message><ID>{}</ID>\
         <Method>\"{}\"</Method></detail></soap:Fault>",
        if client { "Client" } else { "Server" },
        escape(message),
        code.as_str(),
        escape(message),
        uuid::Uuid::from_u128(fastrand::u128(..)),
        escape(action),
    ))
}

/// Text escaped for element content.
pub fn text(s: &str) -> std::borrow::Cow<'_, str> {
    escape(s)
}

/// One element: local name, namespace, text and children.
#[derive(Debug, Clone, Default)]
pub struct Node {
    pub name: String,
    pub ns: String,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    /// The first child with this local name.
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child with this local name.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the first child with this name (trimmed), if present.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.trim())
    }

    /// The child at this path of local names.
    pub fn at(&self, path: &[&str]) -> Option<&Node> {
        let mut n = self;
        for p in path {
            n = n.child(p)?;
        }
        Some(n)
    }
}

/// Parses a whole document into its root element.
pub fn parse(xml: &str) -> Result<Node, String> {
    let mut reader = NsReader::from_str(xml);
    let mut stack: Vec<Node> = Vec::new();
    loop {
        let pos = reader.buffer_position();
        let (ns, ev) = reader
            .read_resolved_event()
            .map_err(|e| format!("malformed XML after byte {pos}: {e}"))?;
        let ns = match ns {
            ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
            _ => String::new(),
        };
        match ev {
            Event::Start(e) => stack.push(Node {
                name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                ns,
                ..Default::default()
            }),
            Event::Empty(e) => {
                let node = Node {
                    name: String::from_utf8_lossy(e.local_name().as_ref()).into_owned(),
                    ns,
                    ..Default::default()
                };
                match stack.last_mut() {
                    Some(p) => p.children.push(node),
                    None => return Ok(node),
                }
            }
            Event::Text(t) => {
                if let Some(n) = stack.last_mut() {
                    let s = t
                        .decode()
                        .map_err(|e| format!("bad text in <{}>: {e}", n.name))?;
                    n.text.push_str(&s);
                }
            }
            Event::GeneralRef(r) => {
                if let Some(n) = stack.last_mut() {
                    match r.resolve_char_ref().map_err(|e| e.to_string())? {
                        Some(c) => n.text.push(c),
                        None => {
                            let name = r.decode().map_err(|e| e.to_string())?;
                            let v = quick_xml::escape::resolve_predefined_entity(&name)
                                .ok_or_else(|| format!("unknown entity &{name};"))?;
                            n.text.push_str(v);
                        }
                    }
                }
            }
            Event::CData(t) => {
                if let Some(n) = stack.last_mut() {
                    n.text.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::End(_) => {
                let node = stack.pop().ok_or("unbalanced end tag")?;
                match stack.last_mut() {
                    Some(p) => p.children.push(node),
                    None => return Ok(node),
                }
            }
            Event::Eof => return Err("the document ends before its root element closes".into()),
            _ => {}
        }
    }
}

/// The operation element inside `soap:Body`; a fault comes back as `Err`.
pub fn body(xml: &str) -> Result<Node, Fault> {
    let root = parse(xml).map_err(|m| Fault {
        code: None,
        message: format!("not a SOAP message: {m}"),
    })?;
    if root.name != "Envelope" || root.ns != NS_SOAP {
        return Err(Fault {
            code: None,
            message: format!("not a SOAP 1.1 envelope (root <{}>)", root.name),
        });
    }
    let first = root
        .children
        .into_iter()
        .find(|c| c.name == "Body")
        .and_then(|b| b.children.into_iter().next())
        .ok_or_else(|| Fault {
            code: None,
            message: "the SOAP body is empty".into(),
        })?;
    if first.name == "Fault" && first.ns == NS_SOAP {
        let detail = first.child("detail");
        let code = detail.and_then(|d| d.text_of("ErrorCode")).unwrap_or("");
        let message = detail
            .and_then(|d| d.text_of("Message"))
            .filter(|m| !m.is_empty())
            .or(first.text_of("faultstring"))
            .unwrap_or("")
            .to_owned();
        return Err(Fault {
            code: ErrorCode::parse(code),
            message: if code.is_empty() {
                message
            } else {
                format!("{code}: {message}")
            },
        });
    }
    Ok(first)
}

/// `true`/`false` (and `1`/`0`) as xs:boolean has them.
pub fn boolean(s: &str) -> Option<bool> {
    match s.trim() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fault_round_trips_its_error_code() {
        let xml = fault(
            ErrorCode::InvalidCookie,
            "cookie expired",
            "http://www.microsoft.com/SoftwareDistribution/GetUpdateData",
        );
        let f = body(&xml).unwrap_err();
        assert_eq!(f.code, Some(ErrorCode::InvalidCookie));
        assert!(f.message.contains("cookie expired"), "{}", f.message);
    }

    #[test]
    fn bodies_are_read_whatever_the_prefixes() {
        let xml = "<e:Envelope xmlns:e=\"http://schemas.xmlsoap.org/soap/envelope/\"><e:Body>\
                   <m:GetCookie xmlns:m=\"http://www.microsoft.com/SoftwareDistribution\">\
                   <m:protocolVersion>1.7 &amp; more</m:protocolVersion></m:GetCookie></e:Body></e:Envelope>";
        let b = body(xml).unwrap();
        assert_eq!(b.name, "GetCookie");
        assert_eq!(b.ns, NS_SYNC);
        assert_eq!(b.text_of("protocolVersion"), Some("1.7 & more"));
    }
}
