//! `native-server PORT`: the `add` action as a bare native HTTP server on
//! the executor's own HTTP stack (actix-web, one worker per core), answering
//! `POST /run` with no isolation and no logs: the ceiling an executor on
//! this stack could reach.

use actix_web::{App, HttpResponse, HttpServer, web};

async fn run(body: web::Bytes) -> HttpResponse {
    let params: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let value = &params["value"];
    let sum = value["param1"].as_i64().unwrap_or(0) + value["param2"].as_i64().unwrap_or(0);
    HttpResponse::Ok().json(serde_json::json!({ "result": sum }))
}

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    actix_web::rt::System::new().block_on(async move {
        HttpServer::new(|| App::new().route("/run", web::post().to(run)))
            .bind(("127.0.0.1", port))?
            .run()
            .await
    })
}
