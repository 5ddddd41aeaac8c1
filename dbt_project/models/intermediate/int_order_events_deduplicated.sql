-- Order events (order_paid, order_confirmed, order_cancelled), one row per event_id (rulebook §1).
{{ dedupe_events(ref('stg_landing__orders')) }}
