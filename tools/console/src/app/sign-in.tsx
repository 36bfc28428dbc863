import { ConnectError } from "@connectrpc/connect";
import { Role } from "@shopmesh/sdk/users/v1";
import { useState } from "preact/hooks";
import { setAccessToken, users } from "./clients.js";

export interface SignedIn {
  userId: string;
  email: string;
  displayName: string;
  admin: boolean;
}

/** Signs in through users' SignIn (over the relay); the token stays in memory only. */
export function SignIn({
  who,
  onChange,
}: {
  who: SignedIn | undefined;
  onChange: (who: SignedIn | undefined) => void;
}) {
  const [email, setEmail] = useState("admin@shopmesh.local");
  const [password, setPassword] = useState("");
  const [problem, setProblem] = useState<string | undefined>();
  if (who !== undefined) {
    return (
      <div class="sign-in">
        <span data-testid="signed-in">
          Signed in as {who.displayName} ({who.email}
          {who.admin ? ", admin" : ""})
        </span>{" "}
        <button
          type="button"
          onClick={() => {
            setAccessToken(undefined);
            onChange(undefined);
          }}
        >
          Sign out
        </button>
      </div>
    );
  }
  const submit = async (event: Event) => {
    event.preventDefault();
    try {
      const { user, session } = await users.signIn({ email, password }, { timeoutMs: 5000 });
      setAccessToken(session!.accessToken);
      setProblem(undefined);
      onChange({
        userId: user!.id,
        email: user!.email,
        displayName: user!.displayName,
        admin: user!.role === Role.ADMIN,
      });
    } catch (error) {
      setProblem(ConnectError.from(error).rawMessage);
    }
  };
  return (
    <form class="sign-in" onSubmit={(e) => void submit(e)}>
      <label for="email">Email</label>
      <input
        id="email"
        type="email"
        autocomplete="username"
        value={email}
        onInput={(e) => setEmail(e.currentTarget.value)}
      />
      <label for="password">Password</label>
      <input
        id="password"
        type="password"
        autocomplete="current-password"
        value={password}
        onInput={(e) => setPassword(e.currentTarget.value)}
      />
      <button type="submit">Sign in</button>
      <span class="error" role="alert">
        {problem ?? ""}
      </span>
    </form>
  );
}
