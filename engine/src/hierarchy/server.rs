//! The upstream server: MS-WSUSSS operations answered from the site's store. Transport-free
//! (a SOAPAction and a body in, a status and a body out), so `patchsync serve` mounts it on
//! its HTTP listener and tests call it directly.

use std::io::{Cursor, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Utc};

use super::cookie::{Claims, Refused, Signer};
use super::soap::{self, ErrorCode, NS_AUTH, NS_EXT, NS_SYNC, Node, text};
use crate::config::{ChildSite, Config};
use crate::model::UpdateId;
use crate::store::{RevisionList, Store, UpdateSelection};

/// The protocol version this server speaks (as Microsoft's upstream library advertises).
pub const PROTOCOL_VERSION: &str = "1.21";
/// The auth plug-in children use, and where it is served (relative to the server root).
pub const PLUGIN_ID: &str = "DssTargeting";
pub const AUTH_SERVICE_PATH: &str = "DssAuthWebService/DssAuthWebService.asmx";
pub const SYNC_SERVICE_PATH: &str = "ServerSyncWebService/ServerSyncWebService.asmx";
/// Metadata above this size is sent compressed (`XmlUpdateBlobCompressed`), as Windows does.
const COMPRESS_ABOVE: usize = 5_120;

/// Which of the two web services a request reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    ServerSync,
    DssAuth,
}

/// What happened on a child's link, for the hierarchy's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A child authenticated, or used a valid cookie.
    Contact { site: String },
    /// Authentication was refused (unknown site, wrong secret).
    AuthFailed { site: String, message: String },
}

/// A response: HTTP status (200, or 500 with a SOAP fault), body, and what it says about
/// the child's link.
#[derive(Debug, Clone)]
pub struct SoapReply {
    pub status: u16,
    pub body: String,
    pub event: Option<LinkEvent>,
}

/// Serves a site's store to its children.
pub struct UpstreamServer {
    config: Config,
    signer: Signer,
    started: DateTime<Utc>,
    /// Session and authorization cookies live this long (MS-WSUSSS <29>: 240 minutes).
    pub cookie_seconds: i64,
    /// `MaxNumberOfUpdatesPerRequest`.
    pub batch: usize,
}

type Handled = Result<(String, Option<LinkEvent>), (ErrorCode, String, Option<LinkEvent>)>;

impl UpstreamServer {
    pub fn new(config: Config) -> UpstreamServer {
        UpstreamServer {
            config,
            signer: Signer::random(),
            started: Utc::now(),
            cookie_seconds: 240 * 60,
            batch: 100,
        }
    }

    /// Answers one request. `action` is the SOAPAction header (quotes allowed); when absent
    /// the body's operation element decides. `authorization` is the HTTP header, which
    /// carries a child's secret to `GetAuthorizationCookie` (`Basic base64(site:secret)`).
    pub fn handle(
        &self,
        service: Service,
        action: Option<&str>,
        body: &str,
        authorization: Option<&str>,
    ) -> SoapReply {
        let action = action.map(|a| a.trim().trim_matches('"').to_owned());
        let op = match soap::body(body) {
            Ok(op) => op,
            Err(f) => {
                return self.fault(
                    ErrorCode::InvalidParameters,
                    &f.message,
                    action.as_deref().unwrap_or(""),
                    None,
                );
            }
        };
        let (ns, prefix) = match service {
            Service::ServerSync => (NS_SYNC, NS_SYNC.to_owned()),
            Service::DssAuth => (NS_AUTH, NS_AUTH.to_owned()),
        };
        let expected = format!("{prefix}/{}", op.name);
        let action = action.unwrap_or_else(|| expected.clone());
        if action != expected || op.ns != ns {
            return self.fault(
                ErrorCode::InvalidParameters,
                &format!(
                    "SOAPAction {action:?} does not match the body's operation <{}> in namespace {:?}",
                    op.name, op.ns
                ),
                &action,
                None,
            );
        }
        let now = Utc::now().timestamp();
        let result: Handled = match (service, op.name.as_str()) {
            (Service::DssAuth, "GetAuthorizationCookie") => {
                self.authorization_cookie(&op, authorization, now)
            }
            (Service::ServerSync, "GetAuthConfig") => Ok((self.auth_config(), None)),
            (Service::ServerSync, "GetCookie") => self.cookie(&op, now),
            (Service::ServerSync, name) => match self.session(&op, now) {
                Err(e) => Err(e),
                Ok(claims) => {
                    let contact = Some(LinkEvent::Contact { site: claims.site });
                    match name {
                        "GetConfigData" => self.config_data(&op),
                        "GetRevisionIdList" => self.revision_id_list(&op),
                        "GetUpdateData" => self.update_data(&op),
                        other => Err((
                            ErrorCode::InvalidParameters,
                            format!(
                                "{other} is not offered: this server serves update metadata \
                                 (catalog-only sync), not content, deployments or reports"
                            ),
                            None,
                        )),
                    }
                    .map(|(b, _)| (b, contact.clone()))
                    .map_err(|(c, m, _)| (c, m, contact))
                }
            },
            (_, other) => Err((
                ErrorCode::InvalidParameters,
                format!("{other} is not an operation of this service"),
                None,
            )),
        };
        match result {
            Ok((body, event)) => SoapReply {
                status: 200,
                body: soap::envelope(&body),
                event,
            },
            Err((code, message, event)) => self.fault(code, &message, &action, event),
        }
    }

    fn fault(
        &self,
        code: ErrorCode,
        message: &str,
        action: &str,
        event: Option<LinkEvent>,
    ) -> SoapReply {
        SoapReply {
            status: 500,
            body: soap::fault(code, message, action),
            event,
        }
    }

    fn auth_config(&self) -> String {
        format!(
            "<GetAuthConfigResponse xmlns=\"{NS_SYNC}\"><GetAuthConfigResult>\
             <LastChange>{}</LastChange><AuthInfo><AuthPlugInInfo><PlugInID>{PLUGIN_ID}</PlugInID>\
             <ServiceUrl>{AUTH_SERVICE_PATH}</ServiceUrl><Parameter /></AuthPlugInInfo></AuthInfo>\
             <AllowedEventIds /></GetAuthConfigResult></GetAuthConfigResponse>",
            xml_time(self.started)
        )
    }

    fn authorization_cookie(&self, op: &Node, authorization: Option<&str>, now: i64) -> Handled {
        let account = op.text_of("accountName").unwrap_or("").to_owned();
        let refuse = |message: String| {
            Err((
                ErrorCode::InvalidAuthorizationCookie,
                message.clone(),
                Some(LinkEvent::AuthFailed {
                    site: if account.is_empty() {
                        "(unnamed)".into()
                    } else {
                        account.clone()
                    },
                    message,
                }),
            ))
        };
        let issue = |account: String| {
            let data = self.signer.issue(&Claims {
                kind: "auth".into(),
                site: account.clone(),
                expires: now + self.cookie_seconds,
                protocol: String::new(),
            });
            Ok((
                format!(
                    "<GetAuthorizationCookieResponse xmlns=\"{NS_AUTH}\"><GetAuthorizationCookieResult>\
                     <PlugInId>{PLUGIN_ID}</PlugInId><CookieData>{data}</CookieData>\
                     </GetAuthorizationCookieResult></GetAuthorizationCookieResponse>"
                ),
                Some(LinkEvent::Contact { site: account }),
            ))
        };
        // A WSUS downstream server is known by its name (`accountName`), as WSUS knows them.
        if self.child(&account).is_some_and(|c| c.wsus) {
            return issue(account);
        }
        let Some((user, secret)) = basic_credentials(authorization) else {
            return refuse(format!(
                "site '{account}' sent no credentials: a child authenticates with HTTP Basic \
                 (its site name and the secret of its [[child]] entry here)"
            ));
        };
        if user != account {
            return refuse(format!(
                "the credentials are for '{user}' but accountName is '{account}'"
            ));
        }
        let Some(child) = self.child(&account) else {
            return refuse(format!(
                "site '{account}' is not a child of {}: add a [[child]] entry with its name and \
                 secret to {}",
                self.config.site_name,
                self.config.file.display()
            ));
        };
        if !same_secret(&secret, &child.secret) {
            return refuse(format!(
                "site '{account}' gave a wrong secret: it must equal the secret of its \
                 [[child]] entry on {}",
                self.config.site_name
            ));
        }
        issue(account)
    }

    fn cookie(&self, op: &Node, now: i64) -> Handled {
        let version = op.text_of("protocolVersion").unwrap_or("").to_owned();
        check_protocol(&version).map_err(|(c, m)| (c, m, None))?;
        let mut claims = None;
        for c in op
            .child("authCookies")
            .map(|a| a.all("AuthorizationCookie").collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if c.text_of("PlugInId") != Some(PLUGIN_ID) {
                continue;
            }
            match self
                .signer
                .check(c.text_of("CookieData").unwrap_or(""), "auth", now)
            {
                Ok(cl) => claims = Some(cl),
                Err(r) => {
                    return Err((
                        ErrorCode::InvalidAuthorizationCookie,
                        format!(
                            "the authorization cookie is {}: call GetAuthorizationCookie again",
                            refusal(&r)
                        ),
                        None,
                    ));
                }
            }
        }
        let Some(auth) = claims else {
            return Err((
                ErrorCode::InvalidAuthorizationCookie,
                format!(
                    "authCookies holds no {PLUGIN_ID} cookie: call GetAuthorizationCookie first"
                ),
                None,
            ));
        };
        let expires = now + self.cookie_seconds.min(auth.expires - now).max(1);
        let data = self.signer.issue(&Claims {
            kind: "session".into(),
            site: auth.site.clone(),
            expires,
            protocol: version,
        });
        let expiration = DateTime::from_timestamp(expires, 0).unwrap_or_else(Utc::now);
        Ok((
            format!(
                "<GetCookieResponse xmlns=\"{NS_SYNC}\"><GetCookieResult><Expiration>{}</Expiration>\
                 <EncryptedData>{data}</EncryptedData></GetCookieResult></GetCookieResponse>",
                xml_time(expiration)
            ),
            Some(LinkEvent::Contact { site: auth.site }),
        ))
    }

    /// The session cookie every other operation carries.
    fn session(
        &self,
        op: &Node,
        now: i64,
    ) -> Result<Claims, (ErrorCode, String, Option<LinkEvent>)> {
        let data = op
            .at(&["cookie", "EncryptedData"])
            .map(|n| n.text.trim())
            .ok_or_else(|| {
                (
                    ErrorCode::InvalidCookie,
                    "no cookie: call GetCookie first".to_owned(),
                    None,
                )
            })?;
        let claims = self.signer.check(data, "session", now).map_err(|r| {
            (
                ErrorCode::InvalidCookie,
                format!("the cookie is {}: authenticate again", refusal(&r)),
                None,
            )
        })?;
        check_protocol(&claims.protocol).map_err(|(c, m)| (c, m, None))?;
        Ok(claims)
    }

    fn open(&self) -> Result<Store, (ErrorCode, String, Option<LinkEvent>)> {
        Store::open_read_only(&self.config.store_path)
            .map_err(|e| (ErrorCode::InternalServerError, e.to_string(), None))
    }

    fn config_data(&self, op: &Node) -> Handled {
        let store = self.open()?;
        let tags: Vec<String> = match self.config.filter.languages.tags() {
            Some(t) => t.to_vec(),
            None => {
                let mut v: Vec<String> = store
                    .stored_languages()
                    .map_err(|e| (ErrorCode::InternalServerError, e.to_string(), None))?;
                v.extend(super::languages::known().map(str::to_owned));
                v.sort();
                v.dedup();
                v
            }
        };
        let anchor = format!("{:x}", {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            for t in &tags {
                h.update(t.as_bytes());
                h.update([0]);
            }
            h.finalize()
        });
        let anchor = format!("0,{}", &anchor[..16]);
        // Only languages changed since the child's anchor (all of them on the first call).
        let changed = op.text_of("configAnchor") != Some(anchor.as_str());
        let mut langs = String::new();
        if changed {
            for t in &tags {
                let (id, name) = super::languages::describe(t);
                langs.push_str(&format!(
                    "<ServerSyncLanguageData><LanguageID>{id}</LanguageID><ShortLanguage>{}</ShortLanguage>\
                     <LongLanguage>{}</LongLanguage><Enabled>true</Enabled></ServerSyncLanguageData>",
                    text(t),
                    text(&name)
                ));
            }
        }
        Ok((
            format!(
                "<GetConfigDataResponse xmlns=\"{NS_SYNC}\"><GetConfigDataResult>\
                 <CatalogOnlySync>true</CatalogOnlySync><LazySync>false</LazySync>\
                 <ServerHostsPsfFiles>false</ServerHostsPsfFiles>\
                 <MaxNumberOfComputerIdsInRequest>1000</MaxNumberOfComputerIdsInRequest>\
                 <MaxNumberOfDriverSetsPerRequest>100</MaxNumberOfDriverSetsPerRequest>\
                 <MaxNumberOfPnpHardwareIdsInRequest>100</MaxNumberOfPnpHardwareIdsInRequest>\
                 <MaxNumberOfUpdatesPerRequest>{}</MaxNumberOfUpdatesPerRequest>\
                 <NewConfigAnchor>{anchor}</NewConfigAnchor><ProtocolVersion>{PROTOCOL_VERSION}</ProtocolVersion>\
                 <LanguageUpdateList>{langs}</LanguageUpdateList>\
                 <MaxUpdatesPerRequestInGetUpdateDecryptionData>{}</MaxUpdatesPerRequestInGetUpdateDecryptionData>\
                 </GetConfigDataResult></GetConfigDataResponse>",
                self.batch, self.batch
            ),
            None,
        ))
    }

    fn revision_id_list(&self, op: &Node) -> Handled {
        let bad = |m: String| (ErrorCode::InvalidParameters, m, None);
        let filter = op
            .child("filter")
            .ok_or_else(|| bad("GetRevisionIdList needs a filter".into()))?;
        let since = match filter.text_of("Anchor").filter(|a| !a.is_empty()) {
            None => None,
            Some(a) => Some(parse_anchor(a).ok_or_else(|| {
                bad(format!(
                    "Anchor {a:?} is not an anchor this server issued; omit it to list everything"
                ))
            })?),
        };
        let get_config = filter
            .text_of("GetConfig")
            .and_then(soap::boolean)
            .ok_or_else(|| bad("filter.GetConfig must be true or false".into()))?;
        let store = self.open()?;
        let internal = |e: crate::Error| (ErrorCode::InternalServerError, e.to_string(), None);
        let list = if get_config {
            store.config_revisions(since).map_err(internal)?
        } else {
            let ids = |name: &str| -> Result<std::collections::HashMap<UpdateId, bool>, _> {
                let mut out = std::collections::HashMap::new();
                for n in filter
                    .child(name)
                    .map(|c| c.all("IdAndDelta").collect::<Vec<_>>())
                    .unwrap_or_default()
                {
                    let id = n
                        .text_of("Id")
                        .and_then(|s| UpdateId::parse(s).ok())
                        .ok_or_else(|| bad(format!("filter.{name}: an Id is not a GUID")))?;
                    let delta = n.text_of("Delta").and_then(soap::boolean).unwrap_or(true);
                    out.insert(id, delta);
                }
                Ok(out)
            };
            let selection = UpdateSelection {
                categories: ids("Categories")?,
                classifications: ids("Classifications")?,
            };
            if selection.categories.is_empty() || selection.classifications.is_empty() {
                return Err(bad(
                    "filter.Categories and filter.Classifications must both name at least one id"
                        .into(),
                ));
            }
            store
                .update_revisions(since, &selection)
                .map_err(internal)?
        };
        Ok((revision_list_xml(&list), None))
    }

    fn update_data(&self, op: &Node) -> Handled {
        let bad = |m: String| (ErrorCode::InvalidParameters, m, None);
        let ids: Vec<&Node> = op
            .child("updateIds")
            .map(|u| u.all("UpdateIdentity").collect())
            .unwrap_or_default();
        if ids.len() > self.batch {
            return Err(bad(format!(
                "updateIds holds {} identities; MaxNumberOfUpdatesPerRequest is {}",
                ids.len(),
                self.batch
            )));
        }
        let store = self.open()?;
        let internal = |e: crate::Error| (ErrorCode::InternalServerError, e.to_string(), None);
        let mut updates = String::new();
        let mut urls = String::new();
        let mut seen_digests = std::collections::HashSet::new();
        let mut asked = Vec::with_capacity(ids.len());
        for n in ids {
            let id = n
                .text_of("UpdateID")
                .and_then(|s| UpdateId::parse(s).ok())
                .ok_or_else(|| bad("updateIds: an UpdateID is not a GUID".into()))?;
            let rev: u32 = n
                .text_of("RevisionNumber")
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad(format!("updateIds: update {id} has no RevisionNumber")))?;
            asked.push((id.to_string(), rev));
        }
        let served = store.served_updates(&asked).map_err(internal)?;
        for ((key, rev), u) in asked.into_iter().zip(served) {
            // A revision the store no longer holds is left out; the next listing names
            // the newer one.
            let Some(u) = u else {
                continue;
            };
            updates.push_str(&format!(
                "<ServerSyncUpdateData><Id><UpdateID>{key}</UpdateID><RevisionNumber>{rev}</RevisionNumber></Id>"
            ));
            if u.xml.len() > COMPRESS_ABOVE {
                let blob = compress_blob(&u.xml).map_err(|e| {
                    (
                        ErrorCode::InternalServerError,
                        format!("update {key}: cannot compress its metadata: {e}"),
                        None,
                    )
                })?;
                updates.push_str(&digest_list(&u.digests));
                updates.push_str(&format!(
                    "<XmlUpdateBlobCompressed>{}</XmlUpdateBlobCompressed>",
                    B64.encode(blob)
                ));
            } else {
                updates.push_str("<XmlUpdateBlob>");
                push_cdata(&mut updates, &u.xml);
                updates.push_str("</XmlUpdateBlob>");
                updates.push_str(&digest_list(&u.digests));
            }
            updates.push_str("</ServerSyncUpdateData>");
            for d in u.digests {
                if seen_digests.insert(d.clone())
                    && let Some(url) = store.file_url(&d).map_err(internal)?
                {
                    urls.push_str(&format!(
                        "<ServerSyncUrlData><FileDigest>{}</FileDigest><MUUrl>{}</MUUrl></ServerSyncUrlData>",
                        text(&d),
                        text(&url)
                    ));
                }
            }
        }
        Ok((
            format!(
                "<GetUpdateDataResponse xmlns=\"{NS_SYNC}\"><GetUpdateDataResult>\
                 <updates>{updates}</updates><fileUrls>{urls}</fileUrls>\
                 </GetUpdateDataResult></GetUpdateDataResponse>"
            ),
            None,
        ))
    }

    fn child(&self, name: &str) -> Option<&ChildSite> {
        self.config
            .children
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// `<GetRevisionIdListResponse>` with patchsync's extension after `NewRevisions`.
fn revision_list_xml(list: &RevisionList) -> String {
    let mut s = format!(
        "<GetRevisionIdListResponse xmlns=\"{NS_SYNC}\"><GetRevisionIdListResult><Anchor>{}</Anchor><NewRevisions>",
        anchor(list.version)
    );
    for r in &list.revisions {
        s.push_str(&format!(
            "<UpdateIdentity><UpdateID>{}</UpdateID><RevisionNumber>{}</RevisionNumber></UpdateIdentity>",
            r.id, r.revision
        ));
    }
    s.push_str("</NewRevisions>");
    s.push_str(&format!(
        "<x:Listing xmlns:x=\"{NS_EXT}\"><x:Version>{}</x:Version><x:Complete>{}</x:Complete>",
        list.version, list.complete
    ));
    for r in list.revisions.iter().filter(|r| r.expired) {
        s.push_str(&format!("<x:Expired>{}</x:Expired>", r.id));
    }
    for id in &list.removed {
        s.push_str(&format!("<x:Removed>{id}</x:Removed>"));
    }
    s.push_str("</x:Listing></GetRevisionIdListResult></GetRevisionIdListResponse>");
    s
}

/// Text as CDATA: no escaping to write or undo (a `]]>` inside is split across two
/// sections). xs:string content either way.
fn push_cdata(out: &mut String, text: &str) {
    out.push_str("<![CDATA[");
    out.push_str(&text.replace("]]>", "]]]]><![CDATA[>"));
    out.push_str("]]>");
}

fn digest_list(digests: &[String]) -> String {
    if digests.is_empty() {
        return String::new();
    }
    let mut s = String::from("<FileDigestList>");
    for d in digests {
        s.push_str(&format!("<base64Binary>{}</base64Binary>", text(d)));
    }
    s.push_str("</FileDigestList>");
    s
}

/// An anchor as Windows writes them (MS-WSUSSS <31>): `counter,yyyy-MM-dd hh:mm:ss.sss`;
/// the counter is the catalog version the listing reached.
pub fn anchor(version: u64) -> String {
    format!("{version},{}", Utc::now().format("%Y-%m-%d %H:%M:%S%.3f"))
}

/// The catalog version of an anchor this server issued.
pub fn parse_anchor(a: &str) -> Option<u64> {
    let (n, time) = a.split_once(',')?;
    chrono::NaiveDateTime::parse_from_str(time.trim(), "%Y-%m-%d %H:%M:%S%.3f").ok()?;
    n.trim().parse().ok()
}

/// The metadata as Microsoft's service compresses it: UTF-16LE with a byte-order mark, in a
/// one-file CAB (MSZIP here; readers also take LZX).
fn compress_blob(xml: &str) -> std::io::Result<Vec<u8>> {
    let mut b = cab::CabinetBuilder::new();
    b.add_folder(cab::CompressionType::MsZip).add_file("blob");
    let mut w = b.build(Cursor::new(Vec::new()))?;
    let mut utf16 = Vec::with_capacity(xml.len() * 2 + 2);
    utf16.extend_from_slice(&[0xFF, 0xFE]);
    for u in xml.encode_utf16() {
        utf16.extend_from_slice(&u.to_le_bytes());
    }
    while let Some(mut f) = w.next_file()? {
        f.write_all(&utf16)?;
    }
    Ok(w.finish()?.into_inner())
}

/// Reads `XmlUpdateBlobCompressed`: a CAB (MSZIP or LZX) holding the XML, UTF-16 (with a
/// byte-order mark) or UTF-8.
pub fn decompress_blob(blob: &[u8]) -> Result<String, String> {
    use std::io::Read;
    let mut cab = cab::Cabinet::new(Cursor::new(blob)).map_err(|e| format!("not a CAB: {e}"))?;
    let name = cab
        .folder_entries()
        .flat_map(|f| f.file_entries())
        .next()
        .map(|f| f.name().to_owned())
        .ok_or("the CAB holds no file")?;
    let mut bytes = Vec::new();
    cab.read_file(&name)
        .and_then(|mut r| r.read_to_end(&mut bytes))
        .map_err(|e| format!("cannot decompress {name}: {e}"))?;
    decode_text(&bytes)
}

/// UTF-16 (either byte order, with a byte-order mark) or UTF-8 text.
pub fn decode_text(bytes: &[u8]) -> Result<String, String> {
    let utf16 = |b: &[u8], le: bool| {
        let units: Vec<u16> = b
            .chunks_exact(2)
            .map(|c| {
                if le {
                    u16::from_le_bytes([c[0], c[1]])
                } else {
                    u16::from_be_bytes([c[0], c[1]])
                }
            })
            .collect();
        String::from_utf16(&units).map_err(|e| format!("bad UTF-16: {e}"))
    };
    match bytes {
        [0xFF, 0xFE, rest @ ..] => utf16(rest, true),
        [0xFE, 0xFF, rest @ ..] => utf16(rest, false),
        [0xEF, 0xBB, 0xBF, rest @ ..] => {
            String::from_utf8(rest.to_vec()).map_err(|e| format!("bad UTF-8: {e}"))
        }
        // UTF-16LE without a mark: '<' then a zero byte.
        [b'<', 0, ..] => utf16(bytes, true),
        _ => String::from_utf8(bytes.to_vec()).map_err(|e| format!("bad UTF-8: {e}")),
    }
}

/// `x.y` with major version 1 (MS-WSUSSS 3.1.4.3).
fn check_protocol(v: &str) -> Result<(), (ErrorCode, String)> {
    let Some((major, minor)) = v.split_once('.') else {
        return Err((
            ErrorCode::InvalidParameters,
            format!("protocolVersion {v:?} is not of the form x.y"),
        ));
    };
    if major.parse::<u32>().is_err() || minor.parse::<u32>().is_err() {
        return Err((
            ErrorCode::InvalidParameters,
            format!("protocolVersion {v:?} is not of the form x.y"),
        ));
    }
    if major != "1" {
        return Err((
            ErrorCode::IncompatibleProtocolVersion,
            format!("protocol version {v} is not supported; this server speaks 1.x"),
        ));
    }
    Ok(())
}

fn refusal(r: &Refused) -> &'static str {
    match r {
        Refused::Unreadable => "not one this server issued (or it restarted since)",
        Refused::Expired => "expired",
    }
}

/// The user and secret of an `Authorization: Basic base64(user:secret)` header.
pub fn basic_credentials(header: Option<&str>) -> Option<(String, String)> {
    let v = header?.trim().strip_prefix("Basic ")?;
    let raw = B64.decode(v.trim()).ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// Compared through SHA-256, so timing says nothing about the secret; an empty expected
/// secret matches nothing.
pub fn same_secret(given: &str, expected: &str) -> bool {
    use sha2::Digest;
    // A child without a secret (a WSUS server, known by name) matches no credentials.
    if expected.is_empty() {
        return false;
    }
    let (a, b) = (
        sha2::Sha256::digest(given.as_bytes()),
        sha2::Sha256::digest(expected.as_bytes()),
    );
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// xs:dateTime in UTC.
pub fn xml_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_round_trip_and_foreign_ones_are_refused() {
        assert_eq!(parse_anchor(&anchor(42)), Some(42));
        assert_eq!(parse_anchor("4742,2006-05-26 18:59:26.192"), Some(4742));
        assert_eq!(parse_anchor("yesterday"), None);
    }

    #[test]
    fn cdata_keeps_any_text() {
        let t = "<a>x]]>y &amp; z</a>";
        let mut out = String::from("<b>");
        push_cdata(&mut out, t);
        out.push_str("</b>");
        assert_eq!(soap::parse(&out).unwrap().text, t);
    }

    #[test]
    fn compressed_blobs_read_back() {
        let xml = format!("<Update>{}</Update>", "é".repeat(6000));
        let blob = compress_blob(&xml).unwrap();
        assert_eq!(decompress_blob(&blob).unwrap(), xml);
        assert!(decompress_blob(b"not a cab").is_err());
    }

    #[test]
    fn protocol_versions() {
        assert!(check_protocol("1.7").is_ok());
        assert_eq!(
            check_protocol("2.0").unwrap_err().0,
            ErrorCode::IncompatibleProtocolVersion
        );
        assert_eq!(
            check_protocol("abc").unwrap_err().0,
            ErrorCode::InvalidParameters
        );
    }
}
