/* The least a server can do for benches/compare.sh's alloc row, without STUN: a client that
 * asks in lockstep (each request after the last answer, blocking until it comes, as `turnd
 * bench --mode alloc` does) and a server that answers each datagram with one of the same
 * size, nothing else. An allocation is three such round trips (Allocate, Allocate with
 * credentials, Refresh 0), so any server's CPU per allocation in lockstep is at least three
 * times this server's per round trip. benches/floor/run.sh builds and runs it (`cc -O2`); it
 * is a measuring instrument, not part of turnd.
 *
 *   lockstep server PORT
 *     Bound to 127.0.0.1:PORT; waits in epoll_wait (edge-triggered), receives until EAGAIN,
 *     sends each datagram back to its sender. Prints its CPU time (getrusage) per answer
 *     over the answers from the 1,000th to the last when a client sends an empty datagram,
 *     and exits.
 *   lockstep server-blocking PORT
 *     The same, waiting in a blocking recvfrom instead: two system calls per answer, not
 *     four (epoll_wait, recvfrom, sendto, the recvfrom that finds nothing).
 *   lockstep client PORT COUNT SIZE
 *     COUNT round trips of SIZE bytes from one socket connected to PORT, then the empty
 *     datagram.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define WARMUP 1000

static struct sockaddr_in loop_addr(int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

static double cpu(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return r.ru_utime.tv_sec + r.ru_stime.tv_sec + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

static int server(int port, int blocking) {
  char buf[2048];
  struct sockaddr_in a = loop_addr(port);
  int s = socket(AF_INET, SOCK_DGRAM | (blocking ? 0 : SOCK_NONBLOCK), 0), ep = -1;
  if (s < 0 || bind(s, (void *)&a, sizeof a) < 0) { perror("socket/bind"); return 1; }
  if (!blocking) {
    /* Only when waited on: a socket in an epoll set costs the epoll callback per datagram. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET};
    ep = epoll_create1(0);
    epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
  }
  long answered = 0;
  double c0 = 0;
  for (;;) {
    struct epoll_event out[4];
    if (!blocking) epoll_wait(ep, out, 4, -1);
    for (;;) {
      struct sockaddr_in from;
      socklen_t fl = sizeof from;
      ssize_t n = recvfrom(s, buf, sizeof buf, 0, (void *)&from, &fl);
      /* A pending socket error (an ICMP error for an earlier answer) is skipped, not taken for
       * empty: under edge-triggered epoll what is behind it would wait for the next datagram. */
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) continue;
      if (n < 0) break;
      if (n == 0) {
        double used = cpu() - c0;
        long counted = answered - WARMUP;
        if (counted <= 0) {
          fprintf(stderr, "lockstep server: %ld answers, not more than the %d of the warm-up\n", answered, WARMUP);
          return 1;
        }
        printf("{\"round_trips\":%ld,\"server_cpu_s\":%.3f,\"cpu_us_per_round_trip\":%.2f}\n",
               counted, used, used * 1e6 / counted);
        return 0;
      }
      sendto(s, buf, (size_t)n, 0, (void *)&from, fl);
      if (++answered == WARMUP) c0 = cpu();
      if (blocking) break;
    }
  }
}

static int client(int port, long count, int size) {
  char buf[2048] = {0};
  struct sockaddr_in a = loop_addr(port);
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  if (s < 0 || connect(s, (void *)&a, sizeof a) < 0 || size < 1 || size > (int)sizeof buf) { perror("client"); return 1; }
  for (long i = 0; i < count; i++) {
    send(s, buf, (size_t)size, 0);
    if (recv(s, buf, sizeof buf, 0) < 0) { perror("recv"); return 1; }
  }
  send(s, buf, 0, 0);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "server")) return server(atoi(argv[2]), 0);
  if (argc == 3 && !strcmp(argv[1], "server-blocking")) return server(atoi(argv[2]), 1);
  if (argc == 5 && !strcmp(argv[1], "client")) return client(atoi(argv[2]), atol(argv[3]), atoi(argv[4]));
  fprintf(stderr, "usage: lockstep server PORT | lockstep server-blocking PORT | lockstep client PORT COUNT SIZE\n");
  return 2;
}
