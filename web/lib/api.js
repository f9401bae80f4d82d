// The control API from the browser: tokens in sessionStorage, one refresh on a 401, RFC 9457 errors.

const KEY = "switchboard.auth";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export function auth() {
  try { return JSON.parse(sessionStorage.getItem(KEY)); } catch { return null; }
}

export function saveAuth(answer) {
  sessionStorage.setItem(KEY, JSON.stringify({
    access_token: answer.access_token, refresh_token: answer.refresh_token, user_id: answer.user_id,
  }));
}

export function forget() {
  sessionStorage.removeItem(KEY);
}

async function send(path, { method = "GET", body, token, file, blob = false } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (file !== undefined) headers["Content-Type"] = file.type || "application/octet-stream";
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(`/api${path}`, {
    method, headers, body: file !== undefined ? file : body === undefined ? undefined : JSON.stringify(body),
  });
  if (blob && res.ok) return res.blob();
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { detail: `HTTP ${res.status}` }; }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

let refreshing = null;

async function refresh() {
  const current = auth();
  if (!current?.refresh_token) throw new ApiError(401, { detail: "not logged in" });
  // Two calls failing at once must spend the refresh token only once (a reused one revokes the login).
  refreshing ??= send("/auth/refresh", { method: "POST", body: { refresh_token: current.refresh_token } })
    .then(saveAuth)
    .finally(() => { refreshing = null; });
  return refreshing;
}

/** Calls the API as the logged-in user; an expired access token is refreshed once. */
export async function api(path, options = {}) {
  const current = auth();
  if (!current) throw new ApiError(401, { detail: "not logged in" });
  try {
    return await send(path, { ...options, token: current.access_token });
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) throw err;
    try {
      await refresh();
    } catch (again) {
      forget();
      throw again;
    }
    return send(path, { ...options, token: auth().access_token });
  }
}

/** Sends a file (a Blob) as the raw body: `upload("/me/photo", file, "PUT")`. */
export function upload(path, file, method = "POST") {
  return api(path, { method, file });
}

/** A signed-in download as an object URL (attachments need the Authorization header an <img> cannot send). */
export async function objectUrl(path) {
  return URL.createObjectURL(await api(path, { blob: true }));
}

/** Calls the API without a login (register, verify, login). */
export function publicApi(path, options = {}) {
  return send(path, options);
}

/** The logged-in user, or a redirect to /login that comes back here. */
export function requireLogin() {
  const current = auth();
  if (!current) {
    location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new Error("redirecting to /login");
  }
  return current;
}

/** A person-readable sentence for an error: the API's (banned, not a moderator, ...) or another. */
export function explain(err) {
  // fetch() rejects with a TypeError when the server cannot be reached at all.
  if (err instanceof TypeError) return `Cannot reach the server (${err.message}).`;
  if (!(err instanceof ApiError)) return err.message;
  if (err.status === 403) return `Not allowed: ${err.message}`;
  if (err.status === 429) return "Too many requests: wait a moment and try again.";
  if (err.status === 413) return "That is too big (the photo or attachment must be smaller).";
  if (err.status === 415) return "That is not an image this server accepts (JPEG, PNG, WebP or GIF).";
  if (err.status === 422 && err.problem?.errors?.length) {
    return err.problem.errors.map((e) => `${e.field.replace("_", " ")} ${e.detail}`).join("; ");
  }
  return err.message;
}
