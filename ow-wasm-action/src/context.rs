//! The activation's facts, as OpenWhisk passes them in the environment.

/// The `__OW_*` variables of the current activation. A field is `""` when the
/// variable is unset (for example when the action runs outside OpenWhisk).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// `__OW_API_HOST`: where the OpenWhisk API is.
    pub api_host: String,
    /// `__OW_API_KEY`: the key the action may call the API with.
    pub api_key: String,
    /// `__OW_NAMESPACE`.
    pub namespace: String,
    /// `__OW_ACTION_NAME`, fully qualified.
    pub action_name: String,
    /// `__OW_ACTION_VERSION`.
    pub action_version: String,
    /// `__OW_ACTIVATION_ID`.
    pub activation_id: String,
    /// `__OW_TRANSACTION_ID`.
    pub transaction_id: String,
    /// `__OW_DEADLINE`: epoch milliseconds, as a string.
    pub deadline: String,
}

impl Context {
    /// Read the context from the environment.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        Self {
            api_host: var("__OW_API_HOST"),
            api_key: var("__OW_API_KEY"),
            namespace: var("__OW_NAMESPACE"),
            action_name: var("__OW_ACTION_NAME"),
            action_version: var("__OW_ACTION_VERSION"),
            activation_id: var("__OW_ACTIVATION_ID"),
            transaction_id: var("__OW_TRANSACTION_ID"),
            deadline: var("__OW_DEADLINE"),
        }
    }
}
