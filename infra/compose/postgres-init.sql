-- One PostgreSQL for both registries: POSTGRES_DB creates the MLflow database, this the Prefect one.
CREATE DATABASE prefect OWNER flywheel;
