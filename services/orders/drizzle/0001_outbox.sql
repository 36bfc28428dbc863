CREATE TABLE `outbox` (
	`sequence` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`kind` text NOT NULL,
	`occurred_at` integer NOT NULL,
	`payload` blob NOT NULL
);
