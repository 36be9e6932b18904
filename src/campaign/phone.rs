//! Phone numbers of contacts, pure: normalisation to E.164 with a default region (by the
//! `phonenumber` crate, Google's libphonenumber metadata), and the contact's time zone.
//!
//! # Time zone of a contact
//!
//! In order: the zone given with the contact (an IANA name, checked against `chrono-tz`); else
//! one derived from the number: for countries with a single zone, a region → zone table
//! ([`REGION_ZONES`]); for the North American Numbering Plan (US, CA), a table of area codes
//! ([`NANP_AREA_ZONES`]); else unknown, and the campaign's default zone applies.
//!
//! **The derived zone is approximate.** Some area codes span two zones (parts of Florida,
//! Indiana, Kentucky, Tennessee, Texas, the Dakotas, Nebraska, Oregon, Idaho, Ontario): the
//! table gives the zone of the larger population. Mobile numbers keep their area code when
//! people move. A contact's own `timezone` column, when the list has it, always wins.
//!
//! **Known gap.** With `phonenumber` 0.3.10, some numbers that look valid are refused: on
//! 2026-11-21 `+33 1 42 68 53 00` and `+33 1 23 45 67 89` (France), `+31 10 123 4567`
//! (Netherlands) and `+352 212 3456` (Luxembourg) all came back `NotValid`, while German,
//! Spanish, Italian, Japanese, Australian, British and North American numbers passed. Not yet
//! investigated; such rows are reported as `invalid number`, never imported silently wrong.

use chrono_tz::Tz;
use phonenumber::country;
use std::str::FromStr;

/// Why a number was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Empty after trimming.
    #[error("empty phone number")]
    Empty,
    /// Not parseable as a phone number at all.
    #[error("not a phone number: {0}")]
    Unparseable(String),
    /// Parsed, but not a valid number of its numbering plan.
    #[error("not a valid number in its numbering plan")]
    NotValid,
}

/// Why a default region was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown region {0:?} (expected an ISO 3166 code such as US or GB)")]
pub struct UnknownRegion(pub String);

/// A default region for numbers written without a country code (an ISO 3166 code known to the
/// numbering-plan metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region(country::Id);

impl Region {
    /// Parses an ISO 3166 alpha-2 code (case-insensitive).
    pub fn parse(code: &str) -> Result<Region, UnknownRegion> {
        country::Id::from_str(&code.trim().to_ascii_uppercase())
            .map(Region)
            .map_err(|_| UnknownRegion(code.to_owned()))
    }

    /// The ISO code.
    pub fn code(self) -> String {
        self.0.as_ref().to_owned()
    }
}

/// A valid number in E.164 with the region it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalised {
    /// `+` and digits.
    pub e164: String,
    /// The ISO region of the number, when the metadata tells one.
    pub region: Option<String>,
}

/// Normalises `input` (national or international form, with spaces, dashes, dots or
/// parentheses) to E.164, reading national numbers in `default_region`.
pub fn normalise(input: &str, default_region: Region) -> Result<Normalised, PhoneError> {
    let input = input.trim();
    if input.is_empty() {
        return Err(PhoneError::Empty);
    }
    // `00` international prefix, common in European lists.
    let owned;
    let input = if let Some(rest) = input.strip_prefix("00") {
        owned = format!("+{rest}");
        owned.as_str()
    } else {
        input
    };
    let number = phonenumber::parse(Some(default_region.0), input)
        .map_err(|e| PhoneError::Unparseable(e.to_string()))?;
    if !phonenumber::is_valid(&number) {
        return Err(PhoneError::NotValid);
    }
    let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
    let region = number.country().id().map(|id| id.as_ref().to_owned());
    Ok(Normalised { e164, region })
}

/// Checks an IANA zone name.
pub fn parse_zone(name: &str) -> Option<Tz> {
    name.trim().parse::<Tz>().ok()
}

/// The zone derived from a normalised number, when the tables know one (see module docs).
pub fn derive_zone(n: &Normalised) -> Option<&'static str> {
    match n.region.as_deref() {
        Some("US" | "CA") => {
            let area = n.e164.strip_prefix("+1")?.get(..3)?;
            let area: u16 = area.parse().ok()?;
            NANP_AREA_ZONES
                .iter()
                .find(|(_, codes)| codes.contains(&area))
                .map(|(zone, _)| *zone)
        }
        Some(r) => REGION_ZONES
            .iter()
            .find(|(code, _)| *code == r)
            .map(|(_, zone)| *zone),
        None => None,
    }
}

/// Regions with one zone (or one zone for nearly everyone), ISO code → IANA zone.
pub const REGION_ZONES: &[(&str, &str)] = &[
    ("AE", "Asia/Dubai"),
    ("AR", "America/Argentina/Buenos_Aires"),
    ("AT", "Europe/Vienna"),
    ("BB", "America/Barbados"),
    ("BD", "Asia/Dhaka"),
    ("BE", "Europe/Brussels"),
    ("BG", "Europe/Sofia"),
    ("BS", "America/Nassau"),
    ("CH", "Europe/Zurich"),
    ("CL", "America/Santiago"),
    ("CN", "Asia/Shanghai"),
    ("CO", "America/Bogota"),
    ("CZ", "Europe/Prague"),
    ("DE", "Europe/Berlin"),
    ("DK", "Europe/Copenhagen"),
    ("DO", "America/Santo_Domingo"),
    ("EG", "Africa/Cairo"),
    ("ES", "Europe/Madrid"),
    ("FI", "Europe/Helsinki"),
    ("FR", "Europe/Paris"),
    ("GB", "Europe/London"),
    ("GH", "Africa/Accra"),
    ("GR", "Europe/Athens"),
    ("HK", "Asia/Hong_Kong"),
    ("HU", "Europe/Budapest"),
    ("IE", "Europe/Dublin"),
    ("IL", "Asia/Jerusalem"),
    ("IN", "Asia/Kolkata"),
    ("IS", "Atlantic/Reykjavik"),
    ("IT", "Europe/Rome"),
    ("JM", "America/Jamaica"),
    ("JP", "Asia/Tokyo"),
    ("KE", "Africa/Nairobi"),
    ("KR", "Asia/Seoul"),
    ("LU", "Europe/Luxembourg"),
    ("MA", "Africa/Casablanca"),
    ("MY", "Asia/Kuala_Lumpur"),
    ("NG", "Africa/Lagos"),
    ("NL", "Europe/Amsterdam"),
    ("NO", "Europe/Oslo"),
    ("NZ", "Pacific/Auckland"),
    ("PE", "America/Lima"),
    ("PH", "Asia/Manila"),
    ("PK", "Asia/Karachi"),
    ("PL", "Europe/Warsaw"),
    ("PR", "America/Puerto_Rico"),
    ("PT", "Europe/Lisbon"),
    ("RO", "Europe/Bucharest"),
    ("SA", "Asia/Riyadh"),
    ("SE", "Europe/Stockholm"),
    ("SG", "Asia/Singapore"),
    ("SK", "Europe/Bratislava"),
    ("TH", "Asia/Bangkok"),
    ("TR", "Europe/Istanbul"),
    ("TT", "America/Port_of_Spain"),
    ("TW", "Asia/Taipei"),
    ("UA", "Europe/Kyiv"),
    ("VE", "America/Caracas"),
    ("VN", "Asia/Ho_Chi_Minh"),
    ("ZA", "Africa/Johannesburg"),
];

/// North American area codes (US and Canada) → IANA zone, approximate (see module docs).
pub const NANP_AREA_ZONES: &[(&str, &[u16])] = &[
    (
        "America/New_York",
        &[
            201, 202, 203, 207, 212, 215, 216, 220, 223, 229, 231, 234, 239, 240, 248, 267, 269,
            272, 276, 301, 302, 304, 305, 313, 315, 321, 326, 330, 332, 339, 347, 351, 352, 380,
            386, 401, 404, 407, 410, 412, 413, 419, 423, 434, 440, 443, 445, 470, 475, 478, 484,
            502, 508, 513, 516, 517, 518, 540, 551, 561, 567, 570, 571, 585, 586, 603, 606, 607,
            609, 610, 614, 616, 617, 631, 640, 646, 656, 667, 678, 680, 681, 689, 703, 704, 706,
            716, 717, 718, 724, 727, 732, 734, 740, 743, 754, 757, 762, 770, 772, 774, 781, 786,
            802, 803, 804, 810, 813, 814, 828, 835, 838, 843, 845, 848, 850, 854, 856, 857, 859,
            860, 862, 863, 864, 865, 878, 904, 906, 908, 910, 912, 914, 917, 919, 929, 934, 937,
            941, 947, 954, 959, 973, 978, 980, 984, 989,
        ],
    ),
    (
        "America/Indiana/Indianapolis",
        &[260, 317, 463, 574, 765, 812, 930],
    ),
    (
        "America/Chicago",
        &[
            205, 210, 214, 217, 218, 219, 224, 225, 228, 251, 254, 256, 262, 270, 281, 308, 309,
            312, 314, 316, 318, 319, 320, 331, 334, 337, 346, 361, 364, 402, 405, 409, 414, 417,
            430, 432, 447, 464, 469, 479, 501, 504, 507, 512, 515, 531, 563, 573, 580, 601, 605,
            608, 612, 615, 618, 620, 629, 630, 636, 641, 651, 660, 662, 682, 701, 708, 712, 713,
            715, 726, 731, 737, 763, 769, 773, 779, 785, 806, 815, 816, 817, 830, 832, 847, 870,
            872, 901, 903, 913, 918, 920, 931, 936, 940, 945, 952, 956, 972, 979, 985,
        ],
    ),
    (
        "America/Denver",
        &[
            208, 303, 307, 385, 406, 435, 505, 575, 719, 720, 801, 915, 970, 983, 986,
        ],
    ),
    ("America/Phoenix", &[480, 520, 602, 623, 928]),
    (
        "America/Los_Angeles",
        &[
            206, 209, 213, 253, 279, 310, 323, 341, 350, 360, 369, 408, 415, 424, 425, 442, 458,
            503, 509, 510, 530, 541, 559, 562, 564, 619, 626, 628, 650, 657, 661, 669, 702, 707,
            714, 725, 747, 760, 775, 805, 818, 820, 831, 840, 858, 909, 916, 925, 949, 951, 971,
        ],
    ),
    ("America/Anchorage", &[907]),
    ("Pacific/Honolulu", &[808]),
    ("America/Puerto_Rico", &[787, 939]),
    (
        "America/Toronto",
        &[
            226, 249, 263, 289, 343, 354, 365, 367, 382, 416, 418, 437, 438, 450, 514, 519, 548,
            579, 581, 613, 647, 683, 705, 742, 753, 819, 873, 905,
        ],
    ),
    ("America/Winnipeg", &[204, 431, 584, 807]),
    ("America/Regina", &[306, 474, 639]),
    ("America/Edmonton", &[368, 403, 587, 780, 825]),
    ("America/Vancouver", &[236, 250, 257, 604, 672, 778]),
    ("America/Halifax", &[782, 902]),
    ("America/Moncton", &[428, 506]),
    ("America/St_Johns", &[709, 879]),
    ("America/Whitehorse", &[867]),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn us() -> Region {
        Region::parse("US").unwrap()
    }

    #[test]
    fn national_and_international_forms_normalise() {
        for input in [
            "(212) 555-0123",
            "212.555.0123",
            "+1 212 555 0123",
            "1-212-555-0123",
        ] {
            let n = normalise(input, us()).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(n.e164, "+12125550123", "{input}");
        }
        let gb = Region::parse("gb").unwrap();
        let n = normalise("020 7946 0018", gb).unwrap();
        assert_eq!(n.e164, "+442079460018");
        assert_eq!(n.region.as_deref(), Some("GB"));
        let n = normalise("0044 20 7946 0018", us()).unwrap();
        assert_eq!(n.e164, "+442079460018");
    }

    #[test]
    fn bad_numbers_have_a_reason() {
        assert_eq!(normalise("  ", us()), Err(PhoneError::Empty));
        assert!(matches!(
            normalise("hello", us()),
            Err(PhoneError::Unparseable(_))
        ));
        assert_eq!(normalise("123", us()), Err(PhoneError::NotValid));
        assert_eq!(
            normalise("+1 111 555 0123", us()),
            Err(PhoneError::NotValid)
        );
    }

    #[test]
    fn regions() {
        assert_eq!(Region::parse("de").unwrap().code(), "DE");
        assert!(Region::parse("XX").is_err());
        assert!(Region::parse("").is_err());
    }

    #[test]
    fn zones_derive_from_the_number() {
        let z = |s: &str| derive_zone(&normalise(s, us()).unwrap_or_else(|e| panic!("{s}: {e}")));
        assert_eq!(z("+12125550123"), Some("America/New_York"));
        assert_eq!(z("+13125550123"), Some("America/Chicago"));
        assert_eq!(z("+14155550123"), Some("America/Los_Angeles"));
        assert_eq!(z("+16025550123"), Some("America/Phoenix"));
        assert_eq!(z("+14165550123"), Some("America/Toronto"));
        assert_eq!(z("+442079460018"), Some("Europe/London"));
        assert_eq!(z("+4930123456"), Some("Europe/Berlin"));
        // Several zones, no table: unknown (the campaign's default applies).
        assert_eq!(z("+61212345678"), None);
    }

    #[test]
    fn every_table_zone_is_a_real_zone_and_area_codes_are_unique() {
        for (_, zone) in REGION_ZONES {
            assert!(parse_zone(zone).is_some(), "{zone}");
        }
        let mut seen = std::collections::HashSet::new();
        for (zone, codes) in NANP_AREA_ZONES {
            assert!(parse_zone(zone).is_some(), "{zone}");
            for c in *codes {
                assert!(seen.insert(*c), "area code {c} listed twice");
            }
        }
        assert!(seen.len() > 300, "{} area codes", seen.len());
        assert!(parse_zone("Mars/Olympus").is_none());
    }
}
