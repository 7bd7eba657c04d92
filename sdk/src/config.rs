//! The plugin's config: the manifest's `[config]` table with the site's overrides, with typed
//! getters whose errors name the key (return them from `init` to reject the config).

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A plugin's configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    table: Map<String, Value>,
}

impl Config {
    /// Reads the JSON the host hands to `init`.
    pub fn parse(json: &str) -> Result<Config, String> {
        match serde_json::from_str::<Value>(json) {
            Ok(Value::Object(table)) => Ok(Config { table }),
            Ok(_) => Err("the config is not a table".into()),
            Err(e) => Err(format!("the config is not valid JSON: {e}")),
        }
    }

    /// A config from `key = value` pairs written as JSON: for tests.
    pub fn from_json(value: Value) -> Config {
        match value {
            Value::Object(table) => Config { table },
            _ => Config::default(),
        }
    }

    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// Every key, to reject the ones the plugin does not know.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.table.keys().map(String::as_str)
    }

    /// Refuses keys outside `known`, naming them and the known ones.
    pub fn only(&self, known: &[&str]) -> Result<(), String> {
        match self.keys().find(|k| !known.contains(k)) {
            Some(k) => Err(format!(
                "unknown key '{k}'; known keys: {}",
                known.join(", ")
            )),
            None => Ok(()),
        }
    }

    /// `key` as `T`, or `None` when absent; a value of the wrong type is an error naming it.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, String> {
        match self.table.get(key) {
            None => Ok(None),
            Some(v) => serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| format!("'{key}': {e} (got {v})")),
        }
    }

    /// `key` as `T`; missing is an error naming it.
    pub fn require<T: DeserializeOwned>(&self, key: &str) -> Result<T, String> {
        self.get(key)?.ok_or_else(|| format!("'{key}' is required"))
    }

    pub fn string(&self, key: &str) -> Result<Option<String>, String> {
        self.get(key)
    }

    pub fn integer(&self, key: &str) -> Result<Option<i64>, String> {
        self.get(key)
    }

    pub fn boolean(&self, key: &str) -> Result<Option<bool>, String> {
        self.get(key)
    }

    pub fn strings(&self, key: &str) -> Result<Vec<String>, String> {
        Ok(self.get(key)?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_key() {
        let c = Config::parse(r#"{"days": "ten", "on": true}"#).unwrap();
        assert!(c.integer("days").unwrap_err().contains("'days'"));
        assert_eq!(c.boolean("on").unwrap(), Some(true));
        assert!(
            c.require::<String>("url")
                .unwrap_err()
                .contains("'url' is required")
        );
        assert!(c.only(&["days"]).unwrap_err().contains("unknown key 'on'"));
    }
}
