//! What the handlers share: [`Shared`], built once per process from the
//! config, and [`AppState`], one per serving runtime (it adds the model table
//! with that runtime's upstream connection pools).

use std::sync::Arc;

use crate::auth::Keys;
use crate::config::Config;
use crate::doors::provider_limits::ProviderLimits;
use crate::generations::{Generations, Remote};
use crate::limits::{Limits, SharedCounts};
use crate::models::ModelTable;
use crate::scenarios::Scenarios;
use crate::shutdown::Drain;
use crate::store;
use crate::templates::Templates;

/// What every runtime shares: the config and what is built from it once.
#[derive(Clone)]
pub struct Shared {
    pub config: Arc<Config>,
    pub keys: Arc<Keys>,
    pub limits: Arc<Limits>,
    pub templates: Arc<Templates>,
    /// The mock's scripted answers (section 13), reloaded when they change.
    pub scenarios: Arc<Scenarios>,
    /// A provider's rate limits, emulated for mock routes (section 14).
    pub provider_limits: Arc<ProviderLimits>,
    pub drain: Arc<Drain>,
    /// Generations, kept for reconnects and the generations API.
    pub generations: Arc<Generations>,
    /// One permit per open client connection (`limits.max_connections`).
    pub connections: Arc<tokio::sync::Semaphore>,
    /// What is shared with other replicas, with `[store]`; its chores run
    /// from `server`.
    pub store: Option<store::Adapters>,
}

impl Shared {
    pub fn new(config: Config) -> Shared {
        let keys = Arc::new(Keys::new(&config.auth.api_keys));
        let store = store::connect(&config, &keys);
        let (generations, limits) = match &store {
            Some(adapters) => (
                Generations::shared(
                    &config.streams,
                    Some(adapters.remote.clone() as Arc<dyn Remote>),
                ),
                Limits::shared(
                    &config.limits,
                    adapters.counts.clone() as Arc<dyn SharedCounts>,
                    keys.clone(),
                ),
            ),
            None => (
                Generations::new(&config.streams),
                Limits::new(&config.limits),
            ),
        };
        Shared {
            keys,
            limits: Arc::new(limits),
            templates: Arc::new(Templates::load(&config.prompts_dir)),
            // Checked when the config was loaded; a file broken since then
            // is logged and leaves none.
            scenarios: Arc::new(
                Scenarios::load(config.scenarios_dir().as_deref()).unwrap_or_else(|err| {
                    tracing::error!("mock scenarios not loaded: {err}");
                    Scenarios::none()
                }),
            ),
            drain: Arc::default(),
            provider_limits: Arc::default(),
            generations: Arc::new(generations),
            connections: Arc::new(tokio::sync::Semaphore::new(config.limits.max_connections)),
            store,
            config: Arc::new(config),
        }
    }
}

/// What every handler shares: [`Shared`] (reached through `Deref`), and the
/// model table with its upstream connection pools, one per runtime.
#[derive(Clone)]
pub struct AppState {
    shared: Shared,
    pub models: Arc<ModelTable>,
}

impl AppState {
    /// The state for one runtime on `shared`.
    pub fn on(shared: &Shared) -> AppState {
        AppState {
            models: Arc::new(ModelTable::from_config(&shared.config)),
            shared: shared.clone(),
        }
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.shared
    }
}
