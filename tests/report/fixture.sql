-- tests/report/fixture.sql - a small analytics schema for `crmsyncctl report` and its test.
-- The four relations are the store's (created at its start, services/store/analytics_*.c),
-- with at least these columns; here IF NOT EXISTS, so where the tables exist this file only
-- adds rows, and the INSERTs name their columns, so a table with more columns takes them.
-- (The store's analytics.amo_funnel is a view, which takes no rows: the test loads this
-- file into a database of its own, without the store.)
-- Chosen to cover: names with < & " ' and Cyrillic, a NULL channel and manager, a channel
-- whose refunds exceed its payments, more rows than a chart shows (others), more pipelines
-- than the report draws, groups with no or zero vacancies, 14 months of teacher hours.
CREATE SCHEMA IF NOT EXISTS analytics;
CREATE TABLE IF NOT EXISTS analytics.amo_funnel (
	pipeline_id bigint, pipeline_name text, cohort_month date, status_id bigint,
	status_name text, sort int, leads_reached bigint, conv_next numeric, conv_won numeric,
	median_seconds float8, p90_seconds float8);
CREATE TABLE IF NOT EXISTS analytics.lead_revenue (
	lead_id bigint, channel text, pipeline_id bigint, responsible_user_id bigint,
	responsible_user_name text, created_at timestamptz, won_at timestamptz, client_ids bigint[],
	first_paid_at timestamptz, total_paid numeric, refunds numeric);
CREATE TABLE IF NOT EXISTS analytics.group_fill (
	ed_unit_id bigint, name text, office text, discipline text, status text, students int,
	vacancies int, fill_rate numeric);
CREATE TABLE IF NOT EXISTS analytics.teacher_hours (
	teacher_id bigint, teacher_name text, month date, hours numeric, lessons bigint);

-- Funnel: pipeline 7001 "Продажи <B2C> & "школа"" over three cohorts; 7002 one cohort;
-- 7101..7110 small ones (ten more: the report draws ten pipelines, so two are left out).
INSERT INTO analytics.amo_funnel (pipeline_id, pipeline_name, cohort_month, status_id,
	status_name, sort, leads_reached, conv_next, conv_won, median_seconds, p90_seconds) VALUES
	(7001, 'Продажи <B2C> & "школа"', '2026-01-01', 101, 'Первичный контакт', 10, 40, 0.5, 0.1, 3600, 86400),
	(7001, 'Продажи <B2C> & "школа"', '2026-01-01', 102, 'Пробный урок', 20, 20, 0.4, 0.2, 7200, 172800),
	(7001, 'Продажи <B2C> & "школа"', '2026-01-01', 142, 'Успешно реализовано', 10000, 4, NULL, 1, NULL, NULL),
	(7001, 'Продажи <B2C> & "школа"', '2026-01-01', 143, 'Закрыто и не реализовано', 11000, 30, NULL, 0, NULL, NULL),
	(7001, 'Продажи <B2C> & "школа"', '2026-02-01', 101, 'Первичный контакт', 10, 60, 0.25, 0.05, 1800, 36000),
	(7001, 'Продажи <B2C> & "школа"', '2026-02-01', 102, 'Пробный урок', 20, 15, 0.6, 0.2, 5400, 90000),
	(7001, 'Продажи <B2C> & "школа"', '2026-02-01', 142, 'Успешно реализовано', 10000, 3, NULL, 1, NULL, NULL),
	(7001, 'Продажи <B2C> & "школа"', '2026-03-01', 101, 'Первичный контакт', 10, 25, 0.2, NULL, 900, 9000),
	(7001, 'Продажи <B2C> & "школа"', '2026-03-01', 102, 'Пробный урок', 20, 5, NULL, NULL, NULL, NULL),
	(7002, 'Корпоративные', '2026-02-01', 201, 'Заявка', 10, 12, 0.75, 0.25, 600, 6000),
	(7002, 'Корпоративные', '2026-02-01', 202, 'КП отправлено', 20, 9, 0.3333, 0.3333, 86400, 604800),
	(7002, 'Корпоративные', '2026-02-01', 142, 'Успешно реализовано', 10000, 3, NULL, 1, NULL, NULL);
INSERT INTO analytics.amo_funnel (pipeline_id, pipeline_name, cohort_month, status_id,
	status_name, sort, leads_reached, conv_next, conv_won)
SELECT 7100 + i, 'Воронка ' || i, '2026-02-01', 300 + i, 'Этап ' || i, 10, i, 0.5, 0.1
FROM generate_series(1, 10) AS i;

-- Revenue: 24 named channels (20 drawn, 4 summed as others), a NULL channel, three
-- managers and a lead without one.
INSERT INTO analytics.lead_revenue (lead_id, channel, pipeline_id, responsible_user_id,
	responsible_user_name, created_at, won_at, client_ids, first_paid_at, total_paid, refunds) VALUES
	(1, 'Яндекс.Директ', 7001, 501, 'Анна Смирнова', '2026-01-10 12:00+03', '2026-01-20 12:00+03', '{9001}', '2026-01-21 10:00+03', 42000.00, 0),
	(2, 'Яндекс.Директ', 7001, 502, '<b>"Boss" & Co</b>', '2026-02-11 12:00+03', '2026-02-25 12:00+03', '{9002,9003}', '2026-02-26 10:00+03', 30500.50, 500.25),
	(3, 'vk <ads> & "friends"', 7001, 501, 'Анна Смирнова', '2026-02-12 12:00+03', NULL, '{}', NULL, NULL, NULL),
	(4, 'vk <ads> & "friends"', 7002, 503, 'O''Brien', '2026-03-05 12:00+03', '2026-03-09 12:00+03', '{9004}', '2026-03-10 10:00+03', 15000, 0),
	(5, NULL, 7001, NULL, NULL, '2026-01-15 12:00+03', '2026-01-30 12:00+03', '{9005}', '2026-02-01 10:00+03', 8000, 0),
	(6, 'сарафан', 7002, 503, 'O''Brien', '2026-02-20 12:00+03', '2026-02-22 12:00+03', '{9006}', '2026-02-23 10:00+03', 1000, 4500.75),
	(7, 'сарафан', 7001, 502, '<b>"Boss" & Co</b>', '2026-03-20 12:00+03', NULL, '{}', NULL, 0, 0);
INSERT INTO analytics.lead_revenue (lead_id, channel, pipeline_id, responsible_user_id,
	responsible_user_name, created_at, first_paid_at, total_paid, refunds)
SELECT 100 + i, 'utm_' || lpad(i::text, 2, '0'), 7001 + i % 2, 501 + i % 3,
	CASE i % 3 WHEN 0 THEN 'Анна Смирнова' WHEN 1 THEN '<b>"Boss" & Co</b>' ELSE 'O''Brien' END,
	'2026-01-05 12:00+03'::timestamptz + i * interval '3 days', '2026-03-01 12:00+03', 1000 * i + 0.01 * i, i
FROM generate_series(1, 22) AS i;

-- Groups: 24 (20 drawn), one without vacancies, one with 0, Cyrillic and markup in names.
INSERT INTO analytics.group_fill (ed_unit_id, name, office, discipline, status, students,
	vacancies, fill_rate) VALUES
	(801, 'English <A1> "утро"', 'Центр & Co', 'Английский', 'Формируется', 6, 8, 0.75),
	(802, 'Шахматы', 'Центр & Co', 'Шахматы', 'В работе', 10, 10, 1),
	(803, 'Робототехника', 'Север', 'Робототехника', 'В работе', 4, NULL, NULL),
	(804, 'Рисование', 'Север', NULL, 'В работе', 3, 0, NULL),
	(805, 'Переполнена', NULL, 'Английский', 'В работе', 13, 12, 1.0833);
INSERT INTO analytics.group_fill (ed_unit_id, name, office, discipline, status, students,
	vacancies, fill_rate)
SELECT 900 + i, 'Группа ' || i, CASE WHEN i % 2 = 0 THEN 'Юг' ELSE 'Север' END, 'Математика',
	'В работе', i % 9, 10, round((i % 9) / 10.0, 4)
FROM generate_series(1, 19) AS i;

-- Teacher hours: 23 teachers (20 drawn), 14 months for the first three (12 shown).
INSERT INTO analytics.teacher_hours (teacher_id, teacher_name, month, hours, lessons)
SELECT t, CASE t WHEN 1 THEN 'Мария <Ивановна>' WHEN 2 THEN 'John "Jack" & Sons' ELSE 'Учитель ' || t END,
	('2025-01-01'::date + m * interval '1 month')::date, 10 * t + m + 0.5, 4 * t + m
FROM generate_series(1, 3) AS t, generate_series(0, 13) AS m;
INSERT INTO analytics.teacher_hours (teacher_id, teacher_name, month, hours, lessons)
SELECT t, 'Учитель ' || t, '2026-02-01', t * 1.25, t
FROM generate_series(4, 23) AS t;
