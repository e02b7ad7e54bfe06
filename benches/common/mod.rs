//! Seeding shared by the benchmarks.

use botdb::Db;
use botdb::sea_orm::ConnectionTrait;

/// The `person_id` of person `i` (32 hex digits).
pub(crate) fn person_key(i: usize) -> String {
    format!("{:032x}", i.wrapping_mul(2_654_435_761))
}

/// Inserts `n` people (`person_key(i)`, user id `100000 + i`) with raw multi-row statements.
pub(crate) async fn seed_people(db: &Db, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let rows: Vec<String> =
            chunk.iter().map(|&i| format!("('{}', 'qq', '{}', 'nick{i}', 50)", person_key(i), 100_000 + i)).collect();
        let sql = format!(
            "INSERT INTO person_info (person_id, platform, user_id, nickname, attitude) VALUES {}",
            rows.join(",")
        );
        botdb::testing::engine(db).writer().execute_unprepared(&sql).await.unwrap();
    }
}
