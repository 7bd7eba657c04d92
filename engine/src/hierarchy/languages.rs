//! Language ids (Windows LCIDs) and names for `GetConfigData`'s `LanguageUpdateList`.

/// (short tag, LCID, English name) for the languages Microsoft Update ships.
const LANGUAGES: &[(&str, i32, &str)] = &[
    ("ar", 1025, "Arabic"),
    ("bg", 1026, "Bulgarian"),
    ("cs", 1029, "Czech"),
    ("da", 1030, "Danish"),
    ("de", 1031, "German"),
    ("el", 1032, "Greek"),
    ("en", 1033, "English"),
    ("es", 3082, "Spanish"),
    ("et", 1061, "Estonian"),
    ("fi", 1035, "Finnish"),
    ("fr", 1036, "French"),
    ("he", 1037, "Hebrew"),
    ("hr", 1050, "Croatian"),
    ("hu", 1038, "Hungarian"),
    ("it", 1040, "Italian"),
    ("ja", 1041, "Japanese"),
    ("ko", 1042, "Korean"),
    ("lt", 1063, "Lithuanian"),
    ("lv", 1062, "Latvian"),
    ("nl", 1043, "Dutch"),
    ("no", 1044, "Norwegian"),
    ("pl", 1045, "Polish"),
    ("pt", 2070, "Portuguese (Portugal)"),
    ("pt-br", 1046, "Portuguese (Brazil)"),
    ("ro", 1048, "Romanian"),
    ("ru", 1049, "Russian"),
    ("sk", 1051, "Slovak"),
    ("sl", 1060, "Slovenian"),
    ("sr", 2074, "Serbian (Latin)"),
    ("sv", 1053, "Swedish"),
    ("th", 1054, "Thai"),
    ("tr", 1055, "Turkish"),
    ("uk", 1058, "Ukrainian"),
    ("zh-cn", 2052, "Chinese (Simplified)"),
    ("zh-hk", 3076, "Chinese (Hong Kong SAR)"),
    ("zh-tw", 1028, "Chinese (Traditional)"),
];

/// The LCID and English name of a language tag (0 and the tag when unknown).
pub fn describe(tag: &str) -> (i32, String) {
    let t = tag.to_ascii_lowercase();
    LANGUAGES
        .iter()
        .find(|(s, _, _)| *s == t)
        .map(|(_, id, name)| (*id, (*name).to_owned()))
        .unwrap_or((0, tag.to_owned()))
}

/// Every language tag this table knows.
pub fn known() -> impl Iterator<Item = &'static str> {
    LANGUAGES.iter().map(|(s, _, _)| *s)
}
