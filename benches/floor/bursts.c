/* The least a relay can do for benches/compare.sh's bursts row, without TURN: what any
 * server, turnd or coturn, pays on this machine for the same datagrams and wake-ups.
 * benches/floor/run.sh builds and runs it (`cc -O2`); it is a measuring instrument, not
 * part of turnd.
 *
 *   bursts server PORT PEERPORT SECONDS
 *     A listener on 127.0.0.1:PORT with UDP_GRO. The first datagram from a client address
 *     gets that client a relay socket (UDP_GRO, ephemeral port). What the listener gets from
 *     a client (one datagram or one GRO burst) leaves the client's relay socket for
 *     127.0.0.1:PEERPORT in one send (UDP_SEGMENT when a burst); what a relay socket gets
 *     leaves the listener for its client the same way. Edge-triggered epoll, non-blocking
 *     receives until EAGAIN. From 1 s after the first datagram, for SECONDS, it counts the
 *     datagrams relayed (each segment of a burst one) and its own CPU time (getrusage),
 *     then prints relayed per CPU-second, and goes on relaying until killed.
 *   bursts peer PEERPORT
 *     Echoes each datagram or GRO burst to its sender in one send.
 *   bursts client PORT FLOWS K SIZE INTERVAL_MS SECONDS
 *     FLOWS sockets connected to PORT; flow j sends K x SIZE bytes as one GSO send every
 *     INTERVAL_MS, starting j/FLOWS of an interval in (as `turnd bench --mode bursts`), and
 *     counts the echoed datagrams; sleeps in epoll_wait between sends (a timerfd paces them).
 *     Prints what it sent and what came back, 0.5 s after its last send.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

#define BUF 65536
#define MAXFLOWS 1024

static struct sockaddr_in loop_addr(int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

static int udp(int port, int gro) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0), one = 1, big = 4 << 20;
  struct sockaddr_in a = loop_addr(port);
  if (s < 0 || bind(s, (void *)&a, sizeof a) < 0) { perror("socket/bind"); exit(1); }
  setsockopt(s, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  setsockopt(s, SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
  if (gro && setsockopt(s, SOL_UDP, UDP_GRO, &one, sizeof one) < 0) { perror("UDP_GRO"); exit(1); }
  return s;
}

/* One receive: length, sender, segment size (the length when not a GRO burst); -1 when empty.
 * A pending socket error (an ICMP error for an earlier send) is skipped, not taken for empty:
 * under edge-triggered epoll the datagrams behind it would wait for the next one to come. */
static ssize_t recv_gro(int s, char *buf, struct sockaddr_in *from, int *seg) {
  char control[CMSG_SPACE(sizeof(int))];
  struct iovec iov = {buf, BUF};
  struct msghdr m = {.msg_name = from, .msg_namelen = sizeof *from, .msg_iov = &iov, .msg_iovlen = 1,
                     .msg_control = control, .msg_controllen = sizeof control};
  ssize_t n;
  do {
    m.msg_namelen = sizeof *from;
    m.msg_controllen = sizeof control;
    n = recvmsg(s, &m, 0);
  } while (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EBADF);
  if (n < 0) return -1;
  *seg = (int)n;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) memcpy(seg, CMSG_DATA(c), sizeof(int));
  return n;
}

/* One send of `n` bytes to `to`, as segments of `seg` when longer. */
static void send_gso(int s, const char *buf, size_t n, int seg, const struct sockaddr_in *to) {
  char control[CMSG_SPACE(sizeof(uint16_t))] = {0};
  struct iovec iov = {(void *)buf, n};
  struct msghdr m = {.msg_name = (void *)to, .msg_namelen = sizeof *to, .msg_iov = &iov, .msg_iovlen = 1};
  if ((size_t)seg < n) {
    uint16_t s16 = (uint16_t)seg;
    m.msg_control = control;
    m.msg_controllen = sizeof control;
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof s16);
    memcpy(CMSG_DATA(c), &s16, sizeof s16);
  }
  sendmsg(s, &m, 0);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static double cpu(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return r.ru_utime.tv_sec + r.ru_stime.tv_sec + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

static _Noreturn void server(int port, int peer_port, double seconds) {
  static char buf[BUF];
  static struct { struct sockaddr_in client; int fd; } flows[MAXFLOWS];
  int nflows = 0, ep = epoll_create1(0), listener = udp(port, 1);
  struct sockaddr_in peer = loop_addr(peer_port);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = 0};
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
  long relayed = 0, r0 = 0;
  double first = 0, t0 = 0, c0 = 0;
  int printed = 0;
  for (;;) {
    struct epoll_event out[64];
    int n = epoll_wait(ep, out, 64, -1);
    for (int i = 0; i < n; i++) {
      uint64_t id = out[i].data.u64;
      int fd = id == 0 ? listener : flows[id - 1].fd;
      struct sockaddr_in from;
      int seg;
      ssize_t len;
      while ((len = recv_gro(fd, buf, &from, &seg)) >= 0) {
        if (first == 0) first = now();
        if (id == 0) {
          int f = 0;
          while (f < nflows && (flows[f].client.sin_port != from.sin_port || flows[f].client.sin_addr.s_addr != from.sin_addr.s_addr)) f++;
          if (f == nflows) {
            if (nflows == MAXFLOWS) continue;
            flows[f].client = from;
            flows[f].fd = udp(0, 1);
            struct epoll_event e = {.events = EPOLLIN | EPOLLET, .data.u64 = (uint64_t)f + 1};
            epoll_ctl(ep, EPOLL_CTL_ADD, flows[f].fd, &e);
            nflows++;
          }
          send_gso(flows[f].fd, buf, (size_t)len, seg, &peer);
        } else {
          send_gso(listener, buf, (size_t)len, seg, &flows[id - 1].client);
        }
        relayed += (len + seg - 1) / seg;
      }
    }
    if (t0 == 0 && first != 0 && now() - first >= 1.0) { t0 = now(); c0 = cpu(); r0 = relayed; }
    if (!printed && t0 != 0 && now() - t0 >= seconds) {
      double used = cpu() - c0;
      relayed -= r0;
      printf("{\"relayed\":%ld,\"server_cpu_s\":%.3f,\"relayed_per_cpu_s\":%.0f,\"flows\":%d}\n",
             relayed, used, relayed / used, nflows);
      fflush(stdout);
      printed = 1;
    }
  }
}

static _Noreturn void peer(int port) {
  static char buf[BUF];
  int s = udp(port, 1), fl = fcntl(s, F_GETFL);
  fcntl(s, F_SETFL, fl & ~O_NONBLOCK);
  for (;;) {
    struct sockaddr_in from;
    int seg;
    ssize_t len = recv_gro(s, buf, &from, &seg);
    if (len > 0) send_gso(s, buf, (size_t)len, seg, &from);
  }
}

static int client(int port, int nflows, int k, int size, double interval_ms, double seconds) {
  static char buf[BUF];
  if (nflows < 1 || nflows > MAXFLOWS || k < 1 || k > 64 || size < 1 || k * size > 65000 || interval_ms <= 0) {
    fprintf(stderr, "bursts client: 1-%d flows, 1-64 datagrams of at most 65,000 bytes in all a burst\n", MAXFLOWS);
    return 2;
  }
  int fds[MAXFLOWS], ep = epoll_create1(0), tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
  struct sockaddr_in server = loop_addr(port);
  memset(buf, 0x5a, sizeof buf);
  for (int j = 0; j < nflows; j++) {
    fds[j] = udp(0, 1);
    connect(fds[j], (void *)&server, sizeof server);
    struct epoll_event e = {.events = EPOLLIN | EPOLLET, .data.u64 = (uint64_t)j + 1};
    epoll_ctl(ep, EPOLL_CTL_ADD, fds[j], &e);
  }
  struct epoll_event e = {.events = EPOLLIN, .data.u64 = 0};
  epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &e);
  double step = interval_ms / 1e3 / nflows, start = now() + 0.05, end = start + seconds + 0.5;
  long slot = 0, sent = 0, echoed = 0;
  while (now() < end) {
    double due = start + slot * step;
    if (due <= now() && due < start + seconds) {
      int j = (int)(slot % nflows);
      send_gso(fds[j], buf, (size_t)k * size, size, &server);
      sent += k;
      slot++;
      continue;
    }
    struct itimerspec when = {0};
    double at = due < start + seconds ? due : end;
    when.it_value.tv_sec = (time_t)at;
    when.it_value.tv_nsec = (long)((at - (time_t)at) * 1e9);
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &when, NULL);
    struct epoll_event out[64];
    int n = epoll_wait(ep, out, 64, -1);
    for (int i = 0; i < n; i++) {
      if (out[i].data.u64 == 0) {
        uint64_t x;
        while (read(tfd, &x, sizeof x) > 0) {}
        continue;
      }
      struct sockaddr_in from;
      int seg;
      ssize_t len;
      while ((len = recv_gro(fds[out[i].data.u64 - 1], buf, &from, &seg)) >= 0) echoed += (len + seg - 1) / seg;
    }
  }
  printf("{\"sent\":%ld,\"echoed\":%ld}\n", sent, echoed);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 5 && !strcmp(argv[1], "server")) server(atoi(argv[2]), atoi(argv[3]), atof(argv[4]));
  if (argc == 3 && !strcmp(argv[1], "peer")) peer(atoi(argv[2]));
  if (argc == 8 && !strcmp(argv[1], "client"))
    return client(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atof(argv[6]), atof(argv[7]));
  fprintf(stderr, "usage: bursts server PORT PEERPORT SECONDS | peer PEERPORT | client PORT FLOWS K SIZE INTERVAL_MS SECONDS\n");
  return 2;
}
