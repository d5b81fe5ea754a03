-- The orders database the agent labs query: a small shop, made up for lav.
CREATE TABLE customers (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  email TEXT NOT NULL
);
CREATE TABLE orders (
  id INTEGER PRIMARY KEY,
  customer_id INTEGER NOT NULL REFERENCES customers(id),
  item TEXT NOT NULL,
  quantity INTEGER NOT NULL,
  total_cents INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('placed', 'shipped', 'delivered', 'cancelled')),
  placed_on TEXT NOT NULL
);
INSERT INTO customers VALUES
  (1, 'Ada Byron', 'ada@example.org'),
  (2, 'Grace Hopper', 'grace@example.org'),
  (3, 'Alan Turing', 'alan@example.org'),
  (4, 'Edsger Dijkstra', 'edsger@example.org');
INSERT INTO orders VALUES
  (1001, 1, 'mechanical keyboard', 1, 8900, 'delivered', '2026-10-02'),
  (1002, 1, 'USB-C cable', 3, 2397, 'delivered', '2026-10-02'),
  (1003, 2, 'laptop stand', 1, 4500, 'shipped', '2026-11-20'),
  (1004, 2, 'noise-cancelling headphones', 1, 19900, 'placed', '2026-11-27'),
  (1005, 3, 'chess set', 1, 3500, 'delivered', '2026-09-14'),
  (1006, 3, 'notebook', 5, 2000, 'cancelled', '2026-09-15'),
  (1007, 4, 'fountain pen', 1, 6000, 'shipped', '2026-11-25'),
  (1008, 4, 'ink bottle', 2, 1800, 'placed', '2026-11-28'),
  (1009, 1, 'monitor arm', 1, 7900, 'placed', '2026-11-28'),
  (1010, 2, 'webcam', 1, 5900, 'delivered', '2026-08-30'),
  (1011, 3, 'desk lamp', 1, 3900, 'shipped', '2026-11-26'),
  (1012, 4, 'paper, A4', 10, 4500, 'delivered', '2026-07-01');
