CREATE TABLE account (
  id            serial  PRIMARY KEY,
  email         text    NOT NULL UNIQUE,
  balance_cents integer NOT NULL
);
