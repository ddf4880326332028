//! Filter and sort push-down to SQL. Placeholder until the query engine lands.
