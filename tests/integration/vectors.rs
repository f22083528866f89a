//! Checks every test vector of the identifier coding standard
//! (`schema/vectors/identifiers.json`) against the implementation.

use cpid::ident::identifier::{Apex, Class, Identifier, Prefix, Serial, check};
use serde::Deserialize;

#[derive(Deserialize)]
struct Vectors {
    version: u32,
    apex: String,
    valid: Vec<Valid>,
    invalid: Vec<Invalid>,
    valid_dns: Vec<ValidDns>,
    invalid_dns: Vec<InvalidDns>,
    check: Vec<Check>,
}

#[derive(Deserialize)]
struct Valid {
    input: String,
    canonical: String,
    dns_name: String,
    prefix: String,
    class: String,
    serial: String,
    serial_value: String,
    check: String,
}

#[derive(Deserialize)]
struct Invalid {
    input: String,
    error: String,
}

#[derive(Deserialize)]
struct ValidDns {
    name: String,
    canonical: String,
}

#[derive(Deserialize)]
struct InvalidDns {
    name: String,
    error: String,
}

#[derive(Deserialize)]
struct Check {
    data: String,
    check: String,
}

fn vectors() -> Vectors {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/schema/vectors/identifiers.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn vectors_are_for_version_1_of_the_standard() {
    let v = vectors();
    assert_eq!(v.version, cpid::ident::identifier::STANDARD_VERSION);
    assert!(v.valid.len() >= 25 && v.invalid.len() >= 25);
}

#[test]
fn valid_vectors_parse_to_their_canonical_form_and_parts() {
    for v in vectors().valid {
        let id = Identifier::parse(&v.input).unwrap_or_else(|e| panic!("{:?}: {e}", v.input));
        assert_eq!(id.to_string(), v.canonical, "{:?}", v.input);
        assert_eq!(id.prefix().as_str(), v.prefix);
        assert_eq!(id.class(), Class::parse(&v.class).unwrap());
        assert_eq!(id.serial().to_string(), v.serial);
        assert_eq!(id.serial().value().to_string(), v.serial_value);
        assert_eq!(id.check_char().to_string(), v.check);
        // The parts rebuild the same identifier.
        let rebuilt = Identifier::new(
            Prefix::parse(&v.prefix).unwrap(),
            Class::parse(&v.class).unwrap(),
            Serial::new(v.serial_value.parse().unwrap()).unwrap(),
        );
        assert_eq!(rebuilt, id);
    }
}

#[test]
fn valid_vectors_map_to_their_dns_name_and_back() {
    let v = vectors();
    let apex = Apex::parse(&v.apex).unwrap();
    for v in v.valid {
        let id = Identifier::parse(&v.input).unwrap();
        assert_eq!(id.to_dns_name(&apex), v.dns_name);
        let back = Identifier::from_dns_name(&v.dns_name, &apex).unwrap();
        assert_eq!(back.to_string(), v.canonical);
    }
}

#[test]
fn invalid_vectors_fail_with_their_error_kind() {
    for v in vectors().invalid {
        match Identifier::parse(&v.input) {
            Ok(id) => panic!("{:?} parsed as {id}", v.input),
            Err(e) => assert_eq!(e.kind(), v.error, "{:?}: {e}", v.input),
        }
    }
}

#[test]
fn dns_name_vectors_parse_or_fail_with_their_error_kind() {
    let v = vectors();
    let apex = Apex::parse(&v.apex).unwrap();
    for d in v.valid_dns {
        let id = Identifier::from_dns_name(&d.name, &apex)
            .unwrap_or_else(|e| panic!("{:?}: {e}", d.name));
        assert_eq!(id.to_string(), d.canonical);
    }
    for d in v.invalid_dns {
        match Identifier::from_dns_name(&d.name, &apex) {
            Ok(id) => panic!("{:?} parsed as {id}", d.name),
            Err(e) => assert_eq!(e.kind(), d.error, "{:?}: {e}", d.name),
        }
    }
}

#[test]
fn check_vectors_match_the_mod_37_36_system() {
    for c in vectors().check {
        assert_eq!(
            check::compute(&c.data).map(String::from),
            Some(c.check.clone())
        );
        assert!(check::verify(&format!("{}{}", c.data, c.check)));
    }
}
