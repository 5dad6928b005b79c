/// <reference types="vite/client" />

interface ImportMetaEnv {
  readonly VITE_IMMICH_LOGIN_URL?: string;
}
