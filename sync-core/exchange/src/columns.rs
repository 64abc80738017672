//! Which column of a customer file is which field: header names in English and Chinese, as teams
//! write them, matched without regard to case, spaces, `_` or `-`.

use serde::Serialize;

/// A customer field a file may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    ExternalId,
    Name,
    Address,
    Phone,
    Lat,
    Lon,
    Datum,
    Potential,
    Probability,
    Owner,
    Territory,
    OpeningHours,
    Timezone,
    Tier,
}

impl Field {
    pub const ALL: [Field; 14] = [
        Field::ExternalId,
        Field::Name,
        Field::Address,
        Field::Phone,
        Field::Lat,
        Field::Lon,
        Field::Datum,
        Field::Potential,
        Field::Probability,
        Field::Owner,
        Field::Territory,
        Field::OpeningHours,
        Field::Timezone,
        Field::Tier,
    ];

    /// The header names this field goes by (normalised: lower case, no spaces, `_` or `-`).
    pub fn names(self) -> &'static [&'static str] {
        match self {
            Field::ExternalId => &["externalid", "id", "customerid", "外部编号", "客户编号", "编号"],
            Field::Name => &["name", "customer", "customername", "客户名称", "客户", "名称"],
            Field::Address => &["address", "地址"],
            Field::Phone => &["phone", "telephone", "tel", "mobile", "电话", "联系电话", "手机"],
            Field::Lat => &["lat", "latitude", "纬度"],
            Field::Lon => &["lon", "lng", "long", "longitude", "经度"],
            Field::Datum => &["datum", "coordinatesystem", "坐标系"],
            Field::Potential => &["potential", "potentialvalue", "潜力", "潜在价值"],
            Field::Probability => &["probability", "closeprobability", "成交概率", "概率"],
            Field::Owner => &["owner", "ownerrep", "rep", "负责人", "销售代表"],
            Field::Territory => &["territory", "区域", "片区"],
            Field::OpeningHours => &["openinghours", "hours", "营业时间"],
            Field::Timezone => &["timezone", "时区"],
            Field::Tier => &["tier", "等级", "客户等级"],
        }
    }

    /// The name used in reports and exports.
    pub fn key(self) -> &'static str {
        match self {
            Field::ExternalId => "external_id",
            Field::Name => "name",
            Field::Address => "address",
            Field::Phone => "phone",
            Field::Lat => "lat",
            Field::Lon => "lon",
            Field::Datum => "datum",
            Field::Potential => "potential",
            Field::Probability => "probability",
            Field::Owner => "owner",
            Field::Territory => "territory",
            Field::OpeningHours => "opening_hours",
            Field::Timezone => "timezone",
            Field::Tier => "tier",
        }
    }
}

fn normalise(header: &str) -> String {
    header
        .trim()
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '_' | '-' | '/' | '(' | ')' | '（' | '）'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The columns of a file: where each known field is, and the headers nothing matched.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Mapping {
    pub columns: Vec<(Field, usize)>,
    pub ignored: Vec<String>,
}

/// A header this cannot import from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum HeaderError {
    #[error("no {} column (a header named one of: {})", .field.key(), .names.join(", "))]
    Missing { field: Field, names: Vec<String> },
    #[error("columns {first} and {second} are both {}", .field.key())]
    Twice { field: Field, first: usize, second: usize },
}

impl Mapping {
    /// Maps `header`; a name and a position (lat and lon) are required.
    pub fn from_header(header: &[String]) -> Result<Mapping, HeaderError> {
        let mut mapping = Mapping::default();
        for (i, h) in header.iter().enumerate() {
            let n = normalise(h);
            match Field::ALL.into_iter().find(|f| f.names().contains(&n.as_str())) {
                Some(field) => {
                    if let Some(first) = mapping.column(field) {
                        return Err(HeaderError::Twice { field, first: first + 1, second: i + 1 });
                    }
                    mapping.columns.push((field, i));
                }
                None if n.is_empty() => {}
                None => mapping.ignored.push(h.clone()),
            }
        }
        for field in [Field::Name, Field::Lat, Field::Lon] {
            if mapping.column(field).is_none() {
                let names = field.names().iter().map(|s| s.to_string()).collect();
                return Err(HeaderError::Missing { field, names });
            }
        }
        Ok(mapping)
    }

    pub fn column(&self, field: Field) -> Option<usize> {
        self.columns.iter().find(|(f, _)| *f == field).map(|(_, c)| *c)
    }

    pub fn has(&self, field: Field) -> bool {
        self.column(field).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn english_and_chinese_headers_map_to_the_same_fields() {
        let en = Mapping::from_header(&header(&["Customer Name", "Latitude", "Longitude", "Owner", "Notes"]))
            .expect("maps");
        let zh =
            Mapping::from_header(&header(&["客户名称", "纬度", "经度", "负责人", "备注"])).expect("maps");
        assert_eq!(en.columns, zh.columns);
        assert_eq!(en.column(Field::Owner), Some(3));
        assert_eq!((en.ignored, zh.ignored), (header(&["Notes"]), header(&["备注"])));
    }

    #[test]
    fn a_header_without_a_position_or_with_a_field_twice_is_refused() {
        assert!(matches!(
            Mapping::from_header(&header(&["name", "lat"])),
            Err(HeaderError::Missing { field: Field::Lon, .. })
        ));
        assert_eq!(
            Mapping::from_header(&header(&["name", "lat", "lon", "纬度"])),
            Err(HeaderError::Twice { field: Field::Lat, first: 2, second: 4 })
        );
    }
}
