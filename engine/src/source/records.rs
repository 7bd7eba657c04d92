//! Reader for `metadata.txt` of a WSUS export: `<guid>,<rev hex8>,<len hex8>,<xml>` records,
//! read by the length field (in UTF-16 code units, as .NET counts), never by lines.

use std::io::{BufRead, ErrorKind};

/// One record of `metadata.txt`.
#[derive(Debug, Clone)]
pub struct MetadataRecord {
    /// 1-based record number, for error messages.
    pub index: u64,
    /// The update id exactly as the record header spells it.
    pub id_text: String,
    pub revision: u32,
    pub xml: String,
}

/// Streams records out of any `BufRead`; memory holds one record at a time.
pub struct RecordReader<R> {
    inner: R,
    index: u64,
    started: bool,
    done: bool,
}

impl<R: BufRead> RecordReader<R> {
    pub fn new(inner: R) -> Self {
        RecordReader {
            inner,
            index: 0,
            started: false,
            done: false,
        }
    }

    fn fill(&mut self) -> std::io::Result<&[u8]> {
        while let Err(e) = self.inner.fill_buf() {
            if e.kind() != ErrorKind::Interrupted {
                return Err(e);
            }
        }
        self.inner.fill_buf()
    }

    /// Reads exactly `n` bytes; `Ok(false)` at a clean end of input before any byte.
    fn read_exact_or_eof(&mut self, buf: &mut Vec<u8>, n: usize) -> std::io::Result<usize> {
        let mut got = 0;
        while got < n {
            let avail = self.fill()?;
            if avail.is_empty() {
                break;
            }
            let take = avail.len().min(n - got);
            buf.extend_from_slice(&avail[..take]);
            self.inner.consume(take);
            got += take;
        }
        Ok(got)
    }

    /// The next record, or `None` at the end. Errors say which record and what is wrong.
    pub fn next_record(&mut self) -> Result<Option<MetadataRecord>, String> {
        self.next_record_if(|_, _| true)
    }

    /// Like [`next_record`](Self::next_record), but the XML of a record for which
    /// `want(id_text, revision)` is false is skipped without being copied (its `xml` is empty).
    pub fn next_record_if(
        &mut self,
        mut want: impl FnMut(&str, u32) -> bool,
    ) -> Result<Option<MetadataRecord>, String> {
        if self.done {
            return Ok(None);
        }
        if !self.started {
            self.started = true;
            let head = self.fill().map_err(|e| format!("cannot read: {e}"))?;
            if head.starts_with(b"\xEF\xBB\xBF") {
                self.inner.consume(3);
            }
        }
        // Skip blank line ends between records.
        loop {
            let b = self.fill().map_err(|e| format!("cannot read: {e}"))?;
            match b.first() {
                None => {
                    self.done = true;
                    return Ok(None);
                }
                Some(b'\r') | Some(b'\n') => self.inner.consume(1),
                Some(_) => break,
            }
        }
        self.index += 1;
        let index = self.index;
        let mut header = Vec::with_capacity(55);
        let got = self
            .read_exact_or_eof(&mut header, 55)
            .map_err(|e| format!("record {index}: cannot read: {e}"))?;
        let h = String::from_utf8_lossy(&header);
        if got < 55 || header[36] != b',' || header[45] != b',' || header[54] != b',' {
            return Err(format!(
                "record {index}: header '{}' is not '<guid>,<8 hex revision>,<8 hex length>,' \
                 (the file is truncated, or the previous record's length field is wrong)",
                h.chars().take(60).collect::<String>().escape_debug()
            ));
        }
        let id_text = h[..36].to_string();
        let revision = u32::from_str_radix(&h[37..45], 16).map_err(|_| {
            format!(
                "record {index} (update {id_text}): revision '{}' is not 8 hex digits",
                &h[37..45]
            )
        })?;
        let len = usize::from_str_radix(&h[46..54], 16).map_err(|_| {
            format!(
                "record {index} (update {id_text}): length '{}' is not 8 hex digits",
                &h[46..54]
            )
        })?;

        let xml = if want(&id_text, revision) {
            self.read_units(len)
        } else {
            self.skip_units(len).map(|()| String::new())
        }
        .map_err(|m| format!("record {index} (update {id_text}): {m}"))?;

        // The XML must be followed by a line end or the end of the file.
        let next = self
            .fill()
            .map_err(|e| format!("record {index}: cannot read: {e}"))?;
        match next.first() {
            None | Some(b'\r') | Some(b'\n') => {}
            Some(_) => {
                let peek: String =
                    String::from_utf8_lossy(&next[..next.len().min(24)]).into_owned();
                return Err(format!(
                    "record {index} (update {id_text}): its length field says {len} characters, but the \
                     text there is followed by '{}' instead of a line end; the length field is wrong \
                     or the file is corrupt",
                    peek.escape_debug()
                ));
            }
        }
        Ok(Some(MetadataRecord {
            index,
            id_text,
            revision,
            xml,
        }))
    }

    /// Skips `units` UTF-16 code units of UTF-8 text without copying them.
    fn skip_units(&mut self, units: usize) -> Result<(), String> {
        let mut counted = 0usize;
        loop {
            let buf = self.fill().map_err(|e| format!("cannot read: {e}"))?;
            if buf.is_empty() {
                return Err(format!(
                    "the file ends inside the record: its length field says {units} characters, only {counted} \
                     are there; the export is truncated or the length field is wrong"
                ));
            }
            // Fast path: k bytes add at most k + 1 units (a 4-byte lead adds two), so the
            // first `units - counted - 1` bytes cannot pass the end; count them branch-free.
            let k = buf
                .len()
                .min(units.saturating_sub(counted).saturating_sub(1));
            if k > 0 {
                counted += utf16_units(&buf[..k]);
                self.inner.consume(k);
                continue;
            }
            let mut used = 0;
            for &b in buf {
                let lead = (b as i8) >= -0x40;
                if lead && counted >= units {
                    self.inner.consume(used);
                    return if counted == units {
                        Ok(())
                    } else {
                        Err(format!(
                            "its length field says {units} characters, which splits a character; the length field is wrong"
                        ))
                    };
                }
                counted += usize::from(lead) + usize::from(b >= 0xF0);
                used += 1;
            }
            self.inner.consume(used);
        }
    }

    /// Reads `units` UTF-16 code units of UTF-8 text without reading past them.
    fn read_units(&mut self, units: usize) -> Result<String, String> {
        let mut buf: Vec<u8> = Vec::with_capacity(units + units / 4);
        let mut counted = 0usize; // units in buf[..valid]
        let mut valid = 0usize;
        while counted < units {
            let tail = buf.len() - valid;
            let want = (units - counted).saturating_sub(tail).max(1);
            let got = self
                .read_exact_or_eof(&mut buf, want)
                .map_err(|e| format!("cannot read: {e}"))?;
            if got == 0 {
                return Err(format!(
                    "the file ends inside the record: its length field says {units} characters, only {counted} \
                     are there; the export is truncated or the length field is wrong"
                ));
            }
            let (ok, bad) = match std::str::from_utf8(&buf[valid..]) {
                Ok(s) => (s.len(), false),
                Err(e) => (e.valid_up_to(), e.error_len().is_some()),
            };
            if bad {
                return Err(format!("invalid UTF-8 at byte {} of the XML", valid + ok));
            }
            counted += utf16_units(&buf[valid..valid + ok]);
            valid += ok;
        }
        if counted > units {
            return Err(format!(
                "its length field says {units} characters, which splits a character; the length field is wrong"
            ));
        }
        String::from_utf8(buf).map_err(|e| format!("invalid UTF-8: {e}"))
    }
}

/// UTF-16 code units in valid UTF-8: one per character, two for characters above U+FFFF.
/// (Every byte that does not continue a character starts one; 4-byte starts add one more.)
fn utf16_units(utf8: &[u8]) -> usize {
    // Counted in 16-bit lanes (a chunk of 8,192 bytes adds at most 16,384), which the
    // compiler vectorizes several times wider than a sum of `usize`.
    utf8.chunks(8192)
        .map(|c| {
            c.iter()
                .map(|&b| u16::from((b as i8) >= -0x40) + u16::from(b >= 0xF0))
                .sum::<u16>() as usize
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, rev: u32, xml: &str) -> String {
        let n: usize = xml.chars().map(char::len_utf16).sum();
        format!("{id},{rev:08x},{n:08x},{xml}\r\n")
    }

    #[test]
    fn reads_records_with_multibyte_text_and_raw_line_breaks() {
        let a = "<a>Ω line\r\nbreak 😀 家族</a>";
        let b = "<b/>";
        let text = format!(
            "\u{feff}{}{}",
            rec("e6cf1350-c01b-414d-a61f-263d14d133b4", 1, a),
            rec("0fa1201d-4330-4fa8-8ae9-b877473b6441", 0x1f, b)
        );
        let mut r = RecordReader::new(std::io::BufReader::with_capacity(7, text.as_bytes()));
        let r1 = r.next_record().unwrap().unwrap();
        assert_eq!(r1.xml, a);
        assert_eq!(r1.revision, 1);
        let r2 = r.next_record().unwrap().unwrap();
        assert_eq!((r2.index, r2.revision, r2.xml.as_str()), (2, 0x1f, b));
        assert!(r.next_record().unwrap().is_none());
    }

    #[test]
    fn skipped_records_end_where_read_ones_do() {
        let xmls = [
            "<a>Ω line\r\nbreak 😀 家族</a>",
            "😀",
            "<b/>",
            "ascii only, a little longer than the others",
        ];
        let text: String = xmls
            .iter()
            .enumerate()
            .map(|(i, x)| rec(&format!("e6cf1350-c01b-414d-a61f-{i:012}"), 1, x))
            .collect();
        for cap in [1, 3, 7, 64, 4096] {
            let mut r = RecordReader::new(std::io::BufReader::with_capacity(cap, text.as_bytes()));
            // Skip every other record; the ones read must come out whole.
            let mut n = 0;
            while let Some(x) = r
                .next_record_if(|_, _| {
                    n += 1;
                    n % 2 == 0
                })
                .unwrap()
            {
                let i = x.index as usize - 1;
                assert_eq!(
                    x.xml,
                    if i % 2 == 1 { xmls[i] } else { "" },
                    "capacity {cap}, record {}",
                    x.index
                );
            }
            assert_eq!(n, xmls.len());
        }
    }

    #[test]
    fn utf16_units_match_std() {
        for s in ["", "abc", "Ω家族", "😀 x 😀", "pt-BR Família"] {
            assert_eq!(
                utf16_units(s.as_bytes()),
                s.chars().map(char::len_utf16).sum::<usize>(),
                "{s}"
            );
        }
    }

    #[test]
    fn a_lying_length_field_is_caught() {
        let good = rec("e6cf1350-c01b-414d-a61f-263d14d133b4", 1, "<a>hello</a>");
        let short = good.replacen(",0000000c,", ",00000008,", 1);
        let e = RecordReader::new(short.as_bytes())
            .next_record()
            .unwrap_err();
        assert!(e.contains("length field") && e.contains("e6cf1350"), "{e}");
        let long = good.replacen(",0000000c,", ",000000ff,", 1);
        let e = RecordReader::new(long.as_bytes())
            .next_record()
            .unwrap_err();
        assert!(e.contains("file ends inside the record"), "{e}");
    }
}
