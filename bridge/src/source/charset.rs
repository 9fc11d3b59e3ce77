//! The character sets whose text the bridge can turn into UTF-8 exactly. The binlog carries
//! CHAR/VARCHAR/TEXT values as the bytes the server stores, in the column's own character set;
//! a column in a set not listed here is refused at start (naming it) rather than published
//! with guessed characters.

use encoding_rs::Encoding;

/// How the stored bytes of a text column become a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charset {
    /// utf8mb4, utf8mb3 (utf8): checked to be valid UTF-8.
    Utf8,
    /// ascii: bytes below 0x80 only.
    Ascii,
    /// A single-byte character set, mapped byte by byte (every byte that the set leaves
    /// undefined is an error, never a replacement character).
    SingleByte(&'static Encoding),
}

/// Why stored text could not be read in its column's character set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the bytes are not valid {charset} text")]
pub struct NotInCharset {
    pub charset: &'static str,
}

impl Charset {
    /// The character set of a server-side name (`CHARACTER_SET_NAME`, or the character set of a
    /// collation). `None`: the bridge cannot decode it.
    pub fn from_name(name: &str) -> Option<Charset> {
        let single = |encoding: &'static Encoding| Some(Charset::SingleByte(encoding));
        match name.to_ascii_lowercase().as_str() {
            "utf8mb4" | "utf8mb3" | "utf8" => Some(Charset::Utf8),
            "ascii" => Some(Charset::Ascii),
            // MySQL's latin1 is Windows-1252 (its 0x80..0x9F hold the same characters, and the
            // five bytes 1252 leaves free map to the C1 controls, as in the WHATWG table).
            "latin1" => single(encoding_rs::WINDOWS_1252),
            "latin2" => single(encoding_rs::ISO_8859_2),
            "greek" => single(encoding_rs::ISO_8859_7),
            "hebrew" => single(encoding_rs::ISO_8859_8),
            "latin7" => single(encoding_rs::ISO_8859_13),
            "cp1250" => single(encoding_rs::WINDOWS_1250),
            "cp1251" => single(encoding_rs::WINDOWS_1251),
            "cp1256" => single(encoding_rs::WINDOWS_1256),
            "cp1257" => single(encoding_rs::WINDOWS_1257),
            "koi8r" => single(encoding_rs::KOI8_R),
            "koi8u" => single(encoding_rs::KOI8_U),
            "cp866" => single(encoding_rs::IBM866),
            "macroman" => single(encoding_rs::MACINTOSH),
            _ => None,
        }
    }

    /// The names `from_name` accepts, for error messages.
    pub const SUPPORTED: &'static str = "utf8mb4, utf8mb3, ascii, latin1, latin2, latin7, greek, \
         hebrew, cp1250, cp1251, cp1256, cp1257, koi8r, koi8u, cp866, macroman";

    pub fn name(&self) -> &'static str {
        match self {
            Charset::Utf8 => "UTF-8",
            Charset::Ascii => "ASCII",
            Charset::SingleByte(encoding) => encoding.name(),
        }
    }

    pub fn decode(&self, bytes: Vec<u8>) -> Result<String, NotInCharset> {
        let failed = NotInCharset {
            charset: self.name(),
        };
        match self {
            Charset::Utf8 => String::from_utf8(bytes).map_err(|_| failed),
            Charset::Ascii => {
                if bytes.is_ascii() {
                    String::from_utf8(bytes).map_err(|_| failed)
                } else {
                    Err(failed)
                }
            }
            Charset::SingleByte(encoding) => {
                if bytes.is_ascii() {
                    // Every set listed is ASCII-compatible: nothing to map.
                    return String::from_utf8(bytes).map_err(|_| failed);
                }
                encoding
                    .decode_without_bom_handling_and_without_replacement(&bytes)
                    .map(|text| text.into_owned())
                    .ok_or(failed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_is_windows_1252_byte_for_byte() {
        let latin1 = Charset::from_name("latin1").unwrap();
        assert_eq!(latin1.decode(vec![0x63, 0x61, 0x66, 0xE9]).unwrap(), "café");
        assert_eq!(latin1.decode(vec![0x80, 0x9F]).unwrap(), "€Ÿ");
        // A byte Windows-1252 leaves undefined stays the C1 control MySQL maps it to.
        assert_eq!(latin1.decode(vec![0x81]).unwrap(), "\u{81}");
    }

    #[test]
    fn utf8_and_ascii_are_checked_not_guessed() {
        assert_eq!(
            Charset::Utf8
                .decode("Grüße 🚗".as_bytes().to_vec())
                .unwrap(),
            "Grüße 🚗"
        );
        assert!(Charset::Utf8.decode(vec![0xE9]).is_err());
        assert!(Charset::Ascii.decode(vec![0xE9]).is_err());
        assert_eq!(Charset::from_name("UTF8MB3"), Some(Charset::Utf8));
    }

    #[test]
    fn other_single_byte_sets_map_their_letters() {
        let cp1251 = Charset::from_name("cp1251").unwrap();
        assert_eq!(cp1251.decode(vec![0xCF, 0xF0, 0xE8]).unwrap(), "При");
        let latin2 = Charset::from_name("latin2").unwrap();
        assert_eq!(latin2.decode(vec![0xB9]).unwrap(), "š");
        // ISO-8859-7 leaves 0xAE undefined: an error, not a replacement character.
        let greek = Charset::from_name("greek").unwrap();
        assert!(greek.decode(vec![0xAE]).is_err());
    }

    #[test]
    fn multibyte_sets_other_than_utf8_are_not_decoded() {
        for name in ["gbk", "big5", "sjis", "ucs2", "utf16", "utf32", "binary"] {
            assert_eq!(Charset::from_name(name), None, "{name}");
        }
    }
}
