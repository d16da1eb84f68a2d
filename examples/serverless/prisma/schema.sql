CREATE TABLE IF NOT EXISTS app_user (
  id    serial PRIMARY KEY,
  email text   NOT NULL UNIQUE,
  name  text   NOT NULL
);
